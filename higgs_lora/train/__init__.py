"""Train stage: the shifted loss, the Trainer subclass and callbacks, and the training recipe."""
