"""Reading and writing: ffmpeg media, the HDF5 store, dataset layouts on disk."""
