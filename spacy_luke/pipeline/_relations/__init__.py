"""luke_relation_extractor's internals: the relation records of ``Doc._.luke_relations``."""
