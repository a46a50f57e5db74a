pub mod mapping;
pub mod read;
