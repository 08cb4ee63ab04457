//! Multi-node placement with ractor_cluster. Built in a later issue.
