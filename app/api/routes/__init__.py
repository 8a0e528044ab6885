"""One router per resource; ``app.main`` mounts them."""
