"""SeAFusion's own training: the joint adaptive training of the fusion net and its segmenter."""
