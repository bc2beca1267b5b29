"""What the model eats: audio front ends, image transforms, torch Datasets, the synthetic world."""
