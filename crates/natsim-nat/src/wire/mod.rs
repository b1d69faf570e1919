//! Bytes on the wire that are not the frame being translated: the frames
//! the engine (and the router around it) generates, and the application
//! protocol codecs the ALGs share with the protocol models.

pub mod dcerpc;
pub mod fragment;
pub mod reply;
