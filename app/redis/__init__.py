"""Redis backends of the stateful seams, and the connection they share."""
