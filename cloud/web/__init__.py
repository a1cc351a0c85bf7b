"""The dashboard the hub serves itself: server-rendered HTML, no JavaScript, no CDN."""
