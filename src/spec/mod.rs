//! The bakerd spec (YAML), its validation, and Packer template conversion.
pub mod packer;
