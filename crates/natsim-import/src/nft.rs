//! `nft -j list ruleset` JSON (to be written).
use crate::ipset::Sets;
use crate::{ImportError, Imported};
pub fn import(file: &str, _src: &str, _sets: &Sets) -> Result<Imported, ImportError> {
    Err(ImportError { file: file.into(), loc: crate::Loc { line: 1, col: 1 }, text: String::new(), message: "nft JSON".into(), supported: "" })
}
