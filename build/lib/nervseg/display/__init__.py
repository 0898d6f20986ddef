"""Display: overlays, contours, colours and figures made from masks and probabilities."""
