"""accelerate configs shipped with the trainer, one per sharded strategy (see pift.launcher)."""
