"""ReFusion's own training: the fusion module with a meta-learned loss, and the ablation of its training leads."""
