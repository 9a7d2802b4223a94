"""Models of the four papers and the backbones they share."""
