//! What-if scenarios, replay and synthetic fleets. Built in issues 4 and 5.
