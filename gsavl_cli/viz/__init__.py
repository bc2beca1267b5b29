"""Pictures for people: overlays, heatmap colours, the HTML report."""
