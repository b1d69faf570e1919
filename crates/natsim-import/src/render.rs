//! The `[[router]]` block `natsim import` prints.
