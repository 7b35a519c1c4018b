"""What the LUKE pipes share: the pipe base (loading, settings, serialization), the items pipe, the classifier base, span suggesters, losses, extensions and the checkpoint loader."""
