"""Test suite of pyws."""
