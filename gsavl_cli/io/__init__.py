"""Reading and writing: ffmpeg media, the HDF5 store, embedding caches and mask archives (layouts: `gsavl_cli.datasets`)."""
