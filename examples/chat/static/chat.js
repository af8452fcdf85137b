// pyws chat: the page's side of the JSON protocol spoken at /ws.
//
// One WebSocket per page.  Joining sends {"type":"join","room","nick",
// "session"}; the session id (kept in sessionStorage) lets a reconnecting
// page take its nickname back from its own previous connection.  The answer
// ("joined") carries who is online and the room's last messages; after it
// come deltas (join, leave, rename), each with a version: one not newer
// than the list shown is old news.  When the connection drops, the page
// reconnects with exponential backoff and joins the same room with the same
// nickname again; a reload does too (the room and nickname are kept in
// sessionStorage).  Everything users typed is shown with textContent, never
// as HTML.
(function () {
  "use strict";

  var BACKOFF_MIN_MS = 250;     // first retry delay
  var BACKOFF_MAX_MS = 10000;   // the delay doubles up to this
  var CLOSE_REPLACED = 4001;    // our nickname was taken over by a newer connection
  var CLOSE_POLICY = 1008;      // past a rate limit: wait longer before coming back
  var POLICY_DELAY_MS = 5000;
  var JOINED_KEY = "pyws-chat-joined";  // {room, nick} while in a room, per tab
  // What a close code means, in words (the reason the server gave is added).
  var CLOSE_WORDS = {
    1000: "the connection was closed",
    1001: "the server is restarting",
    1002: "the server did not understand this page",
    1003: "the server refused what this page sent",
    1006: "the connection was lost",
    1007: "the server refused what this page sent",
    1008: "the server closed the connection",
    1009: "a message was too large",
    1011: "the server had a problem",
    1012: "the server is restarting",
    1013: "the server is busy, try again later",
    1015: "the secure connection failed"
  };
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
    members: [],        // the online list shown
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

  function closeWords(event) {
    var words = CLOSE_WORDS[event.code] || "the connection was closed";
    if (event.reason) words += " (" + event.reason + ")";
    return words;
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

  function addMessage(m, earlier) {
    var li = el("li", "msg" + (m.nick === state.nick ? " own" : "") + (earlier ? " earlier" : ""));
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
    if (version !== null && version !== undefined) state.version = version;
    nicks = nicks.slice().sort(function (a, b) {
      var x = a.toLowerCase(), y = b.toLowerCase();
      return x < y ? -1 : x > y ? 1 : (a < b ? -1 : a > b ? 1 : 0);
    });
    state.members = nicks;
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
      if (state.attempts === 0) {
        ui.status.dataset.lastClose = String(event.code);
        ui.status.dataset.lastReason = event.reason || "";
      }
      if (event.code === CLOSE_REPLACED) {
        state.stopped = true;
        setStatus("offline", "Disconnected: this nickname is now used by another window");
        addNotice("error", "Disconnected: another window of yours took over this nickname.");
        return;
      }
      scheduleReconnect(event);
    };
  }

  function scheduleReconnect(event) {
    if (state.stopped) return;
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, state.attempts));
    if (event.code === CLOSE_POLICY) delay = Math.max(delay, POLICY_DELAY_MS);
    delay = Math.round(delay * (0.8 + 0.4 * Math.random()));  // jitter: not all pages at once
    var words = closeWords(event);
    state.attempts += 1;
    setStatus("reconnecting", "Disconnected: " + words + " — reconnecting in " +
              (delay / 1000).toFixed(1) + " s");
    if (state.attempts === 1 && state.everJoined && state.room !== null) {
      addNotice("info", "Disconnected: " + words + ". Reconnecting…");
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
        if (!state.everJoined && Array.isArray(m.history)) {
          m.history.forEach(function (old) {
            if (old && typeof old.text === "string") addMessage(old, true);
          });
        }
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
      case "leave":
      case "rename":
        if (m.room === state.room && state.joined) delta(m);
        break;
      case "renamed":
        state.nick = m.nick;
        showChat();
        remember();
        showOnline(state.members, null);
        break;
      case "error":
        handleError(m);
        break;
    }
  }

  // A presence delta: applied when newer than the list shown; a notice only
  // when it changes the list (a leave of someone never seen is old news).
  function delta(m) {
    if (typeof m.version === "number" && m.version <= state.version) return;
    var nicks = state.members.slice();
    var had = nicks.indexOf(m.nick) >= 0;
    if (m.type === "join") {
      if (had) return;
      nicks.push(m.nick);
      if (m.nick !== state.nick) addNotice("join", m.nick + " joined", m.ts);
    } else if (m.type === "leave") {
      if (!had) return;
      nicks.splice(nicks.indexOf(m.nick), 1);
      if (m.nick !== state.nick) {
        addNotice("leave", m.nick + (m.reason === "timeout" ? " timed out" : " left"), m.ts);
      }
    } else {
      var i = nicks.indexOf(m.old);
      if (i >= 0) nicks.splice(i, 1);
      if (!had) nicks.push(m.nick);
      addNotice("info", m.old + " is now " + m.nick, m.ts);
    }
    showOnline(nicks, typeof m.version === "number" ? m.version : null);
  }

  function handleError(m) {
    var detail = m.detail || m.reason;
    if (state.pending || !state.joined) {
      // The join failed: back to the form (no automatic rejoin).
      state.pending = false;
      state.room = null;
      state.everJoined = false;
      forget();
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
      window.sessionStorage.setItem(JOINED_KEY, JSON.stringify({ room: state.room,
                                                                 nick: state.nick }));
    } catch (e) { /* storage disabled */ }
    if (window.history && history.replaceState) {
      history.replaceState(null, "", "#" + encodeURIComponent(state.room));
    }
  }

  function forget() {
    try {
      window.sessionStorage.removeItem(JOINED_KEY);
    } catch (e) { /* storage disabled */ }
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
    forget();
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
  // A reload (or a restored tab) goes back into the room it was in.
  try {
    var was = JSON.parse(window.sessionStorage.getItem(JOINED_KEY) || "null");
    if (was && typeof was.room === "string" && typeof was.nick === "string") {
      state.room = was.room;
      state.nick = was.nick;
      state.pending = true;  // sent when the connection opens
      ui.nick.value = was.nick;
      ui.room.value = was.room;
    }
  } catch (e) { /* storage disabled or garbage: start at the form */ }
  updateControls();
  connect();
})();
