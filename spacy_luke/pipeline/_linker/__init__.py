"""luke_entity_linker's internals: entity candidate sources, decoding (probabilities, global decoding, loss), the pipe's KB, alias files and building a KB."""
