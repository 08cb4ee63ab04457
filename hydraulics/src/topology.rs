//! Network topology with petgraph: connected components and reachability from sources.
