//! The broker's durable stores in its sled database: committed offsets, ACLs,
//! and opening that database.

pub mod acls;
pub mod offsets;
pub mod state_db;
