//! Supervised ractor actors of the live twin. Built in issue 3.
