"""The use cases behind the CLI commands: preprocess, train, evaluate, localize, demo."""
