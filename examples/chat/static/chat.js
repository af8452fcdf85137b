// pyws chat: the page's side of the JSON protocol spoken at /ws.
//
// One WebSocket per page.  Joining sends {"type":"join","room","nick",
// "session"}; the session id (kept in sessionStorage) lets a reconnecting
// page take its nickname back from its own previous connection.  When the
// connection drops, the page reconnects with exponential backoff and joins
// the same room with the same nickname again.  Everything users typed is
// shown with textContent, never as HTML.
(function () {
  "use strict";

  var BACKOFF_MIN_MS = 250;     // first retry delay
  var BACKOFF_MAX_MS = 10000;   // the delay doubles up to this
  var CLOSE_REPLACED = 4001;    // our nickname was taken over by a newer connection
  var NICK_MAX = 24, ROOM_MAX = 32;
  var ROOM_RE = /^[\p{L}\p{N}_][\p{L}\p{N}_.-]*$/u;

  function $(id) { return document.getElementById(id); }

  var ui = {
    status: $("status"),
    roomTitle: $("room-title"),
    joinView: $("join-view"),
    joinForm: $("join-form"),
    nick: $("nick"),
    room: $("room"),
    join: $("join"),
    joinError: $("join-error"),
    chatView: $("chat-view"),
    log: $("log"),
    composer: $("composer"),
    text: $("text"),
    send: $("send"),
    online: $("online"),
    onlineCount: $("online-count"),
    leave: $("leave")
  };

  var state = {
    ws: null,
    attempts: 0,        // failed connections in a row (backoff exponent)
    timer: null,        // pending reconnect
    room: null,         // the room we want to be in (null: none)
    nick: null,
    joined: false,      // the server confirmed room/nick on this connection
    everJoined: false,  // joined this room before (so a join now is a rejoin)
    pending: false,     // a join was sent, no answer yet
    version: -1,        // of the online list shown
    stopped: false,     // no more reconnects (nickname taken over)
    session: sessionId()
  };

  // -- helpers ---------------------------------------------------------------

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  function sessionId() {
    try {
      var id = window.sessionStorage.getItem("pyws-chat-session");
      if (!id) {
        id = randomId();
        window.sessionStorage.setItem("pyws-chat-session", id);
      }
      return id;
    } catch (e) {
      return randomId();  // storage disabled: still unique to this page
    }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);  // text, never HTML
    return node;
  }

  function formatTime(ts) {
    var date = typeof ts === "number" ? new Date(ts) : new Date();
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.status.textContent = text;
  }

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  }

  function connected() {
    return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
  }

  function send(message) {
    if (!connected()) return false;
    state.ws.send(JSON.stringify(message));
    return true;
  }

  function updateControls() {
    var live = connected();
    ui.join.disabled = state.pending;
    ui.send.disabled = !(live && state.joined);
    ui.text.placeholder = state.joined ? "Message #" + state.room
                                       : (live ? "Joining…" : "Waiting for the connection…");
  }

  // -- the message log --------------------------------------------------------

  function appendEntry(li) {
    var log = ui.log;
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(li);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function addMessage(m) {
    var li = el("li", "msg" + (m.nick === state.nick ? " own" : ""));
    li.dataset.nick = m.nick;
    li.appendChild(el("time", "time", formatTime(m.ts)));
    li.appendChild(el("span", "nick", m.nick));
    li.appendChild(el("span", "text", m.text));
    appendEntry(li);
  }

  function addNotice(kind, text, ts) {
    var li = el("li", "notice " + kind);
    li.appendChild(el("time", "time", formatTime(ts)));
    li.appendChild(el("span", "text", text));
    appendEntry(li);
  }

  // -- who is online ---------------------------------------------------------

  function showOnline(nicks, version) {
    state.version = version;
    ui.online.textContent = "";
    nicks.forEach(function (nick) {
      var li = el("li", nick === state.nick ? "me" : "", nick);
      li.title = nick;
      if (nick === state.nick) li.appendChild(el("span", "you", " (you)"));
      ui.online.appendChild(li);
    });
    ui.onlineCount.textContent = String(nicks.length);
  }

  // -- views -----------------------------------------------------------------

  function showChat() {
    ui.joinView.hidden = true;
    ui.chatView.hidden = false;
    ui.roomTitle.hidden = false;
    ui.roomTitle.textContent = "#" + state.room + " · " + state.nick;
    document.title = "#" + state.room + " · pyws chat";
  }

  function showJoin(error) {
    ui.chatView.hidden = true;
    ui.joinView.hidden = false;
    ui.roomTitle.hidden = true;
    document.title = "pyws chat";
    ui.joinError.hidden = !error;
    ui.joinError.textContent = error || "";
  }

  // -- the connection --------------------------------------------------------

  function connect() {
    if (state.timer !== null) {
      clearTimeout(state.timer);
      state.timer = null;
    }
    setStatus("connecting", "Connecting…");
    var ws = new WebSocket(wsUrl());
    state.ws = ws;

    ws.onopen = function () {
      if (ws !== state.ws) return;
      state.attempts = 0;
      setStatus("online", "Connected");
      if (state.room !== null) sendJoin();
      updateControls();
    };

    ws.onmessage = function (event) {
      if (ws !== state.ws || typeof event.data !== "string") return;
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (message && typeof message.type === "string") handle(message);
    };

    ws.onclose = function (event) {
      if (ws !== state.ws) return;
      state.ws = null;
      state.joined = false;
      state.pending = false;
      updateControls();
      if (state.attempts === 0) ui.status.dataset.lastClose = String(event.code);
      if (event.code === CLOSE_REPLACED) {
        state.stopped = true;
        setStatus("offline", "Disconnected: this nickname is now used by another window");
        addNotice("error", "Disconnected: another window of yours took over this nickname.");
        return;
      }
      scheduleReconnect(event.code);
    };
  }

  function scheduleReconnect(code) {
    if (state.stopped) return;
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, state.attempts));
    delay = Math.round(delay * (0.8 + 0.4 * Math.random()));  // jitter: not all pages at once
    state.attempts += 1;
    setStatus("reconnecting", "Disconnected" + (code ? " (" + code + ")" : "") +
              " — reconnecting in " + (delay / 1000).toFixed(1) + " s");
    if (state.attempts === 1 && state.everJoined && state.room !== null) {
      addNotice("info", "Connection lost, reconnecting…");
    }
    state.timer = setTimeout(connect, delay);
  }

  function sendJoin() {
    state.pending = send({ type: "join", room: state.room, nick: state.nick,
                           session: state.session });
    updateControls();
  }

  // -- what the server says --------------------------------------------------

  function handle(m) {
    switch (m.type) {
      case "joined":
        state.pending = false;
        state.joined = true;
        state.room = m.room;
        state.nick = m.nick;
        showChat();
        addNotice("info", state.everJoined ? "Reconnected to #" + m.room
                                             : "You joined #" + m.room + " as " + m.nick, null);
        state.everJoined = true;
        showOnline(m.nicks, m.version);
        remember();
        updateControls();
        ui.text.focus();
        break;
      case "message":
        if (m.room === state.room && state.joined) addMessage(m);
        break;
      case "join":
        if (m.room === state.room && state.joined && m.nick !== state.nick) {
          addNotice("join", m.nick + " joined", m.ts);
        }
        break;
      case "leave":
        if (m.room === state.room && state.joined && m.nick !== state.nick) {
          addNotice("leave", m.nick + (m.reason === "timeout" ? " timed out" : " left"), m.ts);
        }
        break;
      case "presence":
        if (m.room === state.room && state.joined && m.version > state.version) {
          showOnline(m.nicks, m.version);
        }
        break;
      case "error":
        handleError(m);
        break;
    }
  }

  function handleError(m) {
    var detail = m.detail || m.reason;
    if (state.pending || !state.joined) {
      // The join failed: back to the form (no automatic rejoin).
      state.pending = false;
      state.room = null;
      state.everJoined = false;
      var text = m.reason === "nick_taken"
        ? "That nickname is already in use in this room. Pick another one."
        : "Could not join: " + detail;
      showJoin(text);
      updateControls();
      return;
    }
    addNotice("error", "Error: " + detail, null);
  }

  // -- what the user does ----------------------------------------------------

  function remember() {
    try {
      window.localStorage.setItem("pyws-chat-nick", state.nick);
    } catch (e) { /* storage disabled */ }
    if (window.history && history.replaceState) {
      history.replaceState(null, "", "#" + encodeURIComponent(state.room));
    }
  }

  ui.joinForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var nick = ui.nick.value.trim();
    var room = ui.room.value.trim() || "lobby";
    var problem = !nick ? "Pick a nickname."
      : nick.length > NICK_MAX ? "A nickname has at most " + NICK_MAX + " characters."
      : room.length > ROOM_MAX ? "A room name has at most " + ROOM_MAX + " characters."
      : !ROOM_RE.test(room) ? "A room name has letters, digits, _ . and - only."
      : "";
    if (problem) {
      showJoin(problem);
      return;
    }
    ui.joinError.hidden = true;
    state.nick = nick;
    state.room = room;
    state.everJoined = false;
    ui.log.textContent = "";
    if (connected()) {
      sendJoin();
    } else {
      state.pending = true;  // sent when the connection opens
      updateControls();
      if (state.ws === null && state.stopped) {
        state.stopped = false;
        connect();
      }
    }
  });

  ui.composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = ui.text.value;
    if (!text.trim() || !state.joined) return;
    if (send({ type: "message", text: text })) {
      ui.text.value = "";
      ui.text.focus();
    }
  });

  ui.leave.addEventListener("click", function () {
    send({ type: "leave" });
    state.room = null;
    state.joined = false;
    state.everJoined = false;
    state.pending = false;
    ui.log.textContent = "";
    showOnline([], state.version);
    showJoin("");
    updateControls();
    if (window.history && history.replaceState) {
      history.replaceState(null, "", location.pathname);
    }
    ui.nick.focus();
  });

  window.addEventListener("online", function () {
    // The network is back: do not wait for the backoff timer.
    if (state.ws === null && state.timer !== null) connect();
  });

  // -- start -----------------------------------------------------------------

  try {
    ui.nick.value = window.localStorage.getItem("pyws-chat-nick") || "";
  } catch (e) { /* storage disabled */ }
  try {
    ui.room.value = decodeURIComponent(location.hash.replace(/^#/, "")) || "lobby";
  } catch (e) {
    ui.room.value = "lobby";  // a malformed #fragment
  }
  if (ui.nick.value) ui.join.focus();
  updateControls();
  connect();
})();
