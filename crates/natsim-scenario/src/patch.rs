//! Variants as patches over the file's syntax tree.
//!
//! A variant changes what it names and nothing else. It works on the
//! spanned TOML tree before the tree becomes types, so that a patched value
//! keeps the location it was written at and is checked like any other.
//!
//! * `[[variant.router]]` / `[[variant.host]]` / `[[variant.step]]`: replace
//!   the item of that name whole, or add it;
//! * `remove = ["web", "router.edge.nat.forwards.smtp"]`: drop a node or
//!   any named item;
//! * `set = { "router.edge.nat.hairpin" = "on" }`: set one field (the
//!   leading `router.`/`host.` may be left out when the node's name is
//!   unique);
//! * `add = { "router.edge.nat.forwards" = [{ ... }] }`: append to a list;
//! * `expect = { step-name = "..." }`: replace a step's expectations.
//!
//! A path walks tables by key and lists by their items' `name` (zones by
//! `origin`; lists of strings by the string). A name with dots goes in
//! brackets: `host[mail.example.com].dns`.

use crate::diag::{Ctx, Problem};
use std::ops::Range;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

type Node<'i> = Spanned<DeValue<'i>>;

const NODE_LISTS: [&str; 2] = ["router", "host"];
const ITEM_LISTS: [&str; 3] = ["router", "host", "step"];

/// Splits `router[edge].nat.hairpin` into `router`, `edge`, `nat`, `hairpin`.
fn segments(path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                } else if out.is_empty() {
                    return None;
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                let name: String = chars.by_ref().take_while(|c| *c != ']').collect();
                if name.is_empty() {
                    return None;
                }
                out.push(name);
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    (!out.is_empty()).then_some(out)
}

/// The name an item of a list goes by.
fn item_name<'a>(v: &'a DeValue<'_>) -> Option<&'a str> {
    match v {
        DeValue::String(s) => Some(s.as_ref()),
        DeValue::Table(t) => t
            .get("name")
            .or_else(|| t.get("origin"))
            .and_then(|n| n.get_ref().as_str()),
        _ => None,
    }
}

fn names(v: &DeValue<'_>) -> String {
    let list = match v {
        DeValue::Table(t) => t
            .keys()
            .map(|k| k.get_ref().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        DeValue::Array(a) => a
            .iter()
            .filter_map(|x| item_name(x.get_ref()))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    if list.is_empty() {
        "nothing".into()
    } else {
        list
    }
}

/// Puts the implied `router.`/`host.` in front of a path that starts with
/// a node's name.
fn qualify(root: &DeTable<'_>, mut segs: Vec<String>) -> Vec<String> {
    let top = segs[0].as_str();
    if root.contains_key(top) || ITEM_LISTS.contains(&top) || top == "segment" {
        return segs;
    }
    let owners: Vec<&str> = NODE_LISTS
        .iter()
        .copied()
        .filter(|l| {
            root.get(*l)
                .and_then(|a| a.get_ref().as_array())
                .is_some_and(|a| a.iter().any(|x| item_name(x.get_ref()) == Some(top)))
        })
        .collect();
    if let [one] = owners.as_slice() {
        segs.insert(0, one.to_string());
    }
    segs
}

/// Walks to the parent of the last segment.
fn parent<'a, 'i>(
    root: &'a mut DeValue<'i>,
    segs: &[String],
) -> Result<&'a mut DeValue<'i>, String> {
    let mut cur = root;
    for (k, seg) in segs.iter().enumerate() {
        let here = segs[..k].join(".");
        let here = if here.is_empty() {
            "the file".into()
        } else {
            format!("`{here}`")
        };
        let known = names(cur);
        cur = match cur {
            DeValue::Table(t) => t
                .get_mut(seg.as_str())
                .ok_or_else(|| format!("{here} has no `{seg}` (it has: {known})"))?
                .get_mut(),
            DeValue::Array(a) => {
                let idx = a
                    .iter()
                    .position(|x| item_name(x.get_ref()) == Some(seg.as_str()))
                    .ok_or_else(|| format!("{here} has no item named `{seg}` (items: {known})"))?;
                a.as_mut()[idx].get_mut()
            }
            _ => return Err(format!("{here} is a value, not a table or a list")),
        };
    }
    Ok(cur)
}

enum Op<'i> {
    Set(Node<'i>),
    Add(Node<'i>),
    Remove,
}

fn apply_one<'i>(root: &mut DeValue<'i>, path: &str, op: Op<'i>) -> Result<(), String> {
    let DeValue::Table(t) = &*root else {
        return Err("the file is not a table".into());
    };
    let segs = segments(path)
        .ok_or_else(|| format!("`{path}` is not a path such as `router.edge.nat.hairpin`"))?;
    let segs = qualify(t, segs);
    let (last, init) = segs.split_last().ok_or("an empty path")?;
    let p = parent(root, init)?;
    let known = names(p);
    match (p, op) {
        (DeValue::Table(t), Op::Set(v)) => {
            let key = Spanned::new(v.span(), std::borrow::Cow::Owned(last.clone()));
            t.insert(key, v);
        }
        (DeValue::Table(t), Op::Remove) => {
            t.remove(last.as_str())
                .ok_or_else(|| format!("there is no `{last}` to remove (there is: {known})"))?;
        }
        (DeValue::Table(t), Op::Add(v)) => {
            // A list the file left out (an optional field) starts empty;
            // a key that is no field fails the format check after.
            let key = Spanned::new(v.span(), std::borrow::Cow::Owned(last.clone()));
            let list = t
                .entry(key)
                .or_insert_with(|| Spanned::new(v.span(), DeValue::Array(DeArray::new())));
            let DeValue::Array(a) = list.get_mut() else {
                return Err(format!("`{last}` is not a list"));
            };
            match v.into_inner() {
                DeValue::Array(items) => items.into_iter().for_each(|x| a.push(x)),
                one => a.push(Spanned::new(0..0, one)),
            }
        }
        (DeValue::Array(a), Op::Remove) => {
            let before = a.len();
            let kept: DeArray<'i> = a
                .iter()
                .filter(|x| item_name(x.get_ref()) != Some(last.as_str()))
                .cloned()
                .collect();
            if kept.len() == before {
                return Err(format!("there is no item named `{last}` (items: {known})"));
            }
            *a = kept;
        }
        (DeValue::Array(a), Op::Set(v)) => {
            let idx = a
                .iter()
                .position(|x| item_name(x.get_ref()) == Some(last.as_str()))
                .ok_or_else(|| format!("there is no item named `{last}` (items: {known})"))?;
            a.as_mut()[idx] = v;
        }
        (DeValue::Array(_), Op::Add(_)) => {
            return Err(format!("`{last}` names an item; `add` takes a list's path"))
        }
        _ => {
            return Err(format!(
                "`{}` is a value, not a table or a list",
                init.join(".")
            ))
        }
    }
    Ok(())
}

/// Replaces the same-named item of `list` or appends it.
fn replace_or_add<'i>(root: &mut DeTable<'i>, list: &str, items: &DeArray<'i>, span: Range<usize>) {
    let entry = root
        .entry(Spanned::new(
            span,
            std::borrow::Cow::Owned(list.to_string()),
        ))
        .or_insert_with(|| Spanned::new(0..0, DeValue::Array(DeArray::new())));
    let DeValue::Array(a) = entry.get_mut() else {
        return;
    };
    for it in items {
        let name = item_name(it.get_ref());
        match a
            .iter()
            .position(|x| name.is_some() && item_name(x.get_ref()) == name)
        {
            Some(k) => a.as_mut()[k] = it.clone(),
            None => a.push(it.clone()),
        }
    }
}

/// The scenario a variant describes, as a tree: `base` with the variant's
/// patches applied, and no variants of its own.
pub fn apply<'i>(
    base: &DeTable<'i>,
    variant: &DeTable<'i>,
    variant_span: Range<usize>,
    cx: &Ctx<'_>,
) -> Result<DeTable<'i>, Vec<Problem>> {
    let mut root = DeValue::Table(base.clone());
    let mut problems = Vec::new();
    let mut changes = 0usize;
    if let DeValue::Table(t) = &mut root {
        t.remove("variant");
        for list in ITEM_LISTS {
            if let Some(items) = variant.get(list).and_then(|v| v.get_ref().as_array()) {
                replace_or_add(t, list, items, variant_span.clone());
                changes += items.len();
            }
        }
        if let Some(l) = variant.get("lesson") {
            t.insert(
                Spanned::new(l.span(), std::borrow::Cow::Borrowed("lesson")),
                l.clone(),
            );
        }
    }
    // The nodes and steps this variant replaces whole: a path into one of
    // them would edit the replacement, or be undone by it.
    let replaced: Vec<(&str, String)> = ITEM_LISTS
        .iter()
        .flat_map(|list| {
            variant
                .get(*list)
                .and_then(|v| v.get_ref().as_array())
                .into_iter()
                .flatten()
                .filter_map(|x| item_name(x.get_ref()))
                .map(|n| (*list, n.to_string()))
        })
        .collect();
    let into_replaced = |root: &DeValue<'i>, path: &str| -> Option<String> {
        let DeValue::Table(t) = root else { return None };
        let segs = qualify(t, segments(path)?);
        let (list, name) = (segs.first()?, segs.get(1)?);
        replaced
            .iter()
            .any(|(l, n)| l == list && n == name)
            .then(|| format!("`{path}` reaches into {list} `{name}`, which this variant also replaces whole: write the change into the replacement"))
    };
    let mut fail = |span: Range<usize>, why: String| {
        problems.push(cx.at(
            span,
            why,
            Some("see \"Variants as patches\" in docs/scenarios.md"),
        ));
    };
    if let Some(rm) = variant.get("remove").and_then(|v| v.get_ref().as_array()) {
        for r in rm {
            let Some(path) = r.get_ref().as_str() else {
                continue;
            };
            changes += 1;
            if let Some(why) = into_replaced(&root, path) {
                fail(r.span(), why);
                continue;
            }
            if let Err(why) = apply_one(&mut root, path, Op::Remove) {
                fail(r.span(), format!("`remove` names nothing: {why}"));
            }
        }
    }
    for (key, op) in [("set", 0), ("add", 1)] {
        if let Some(DeValue::Table(ops)) = variant.get(key).map(|v| v.get_ref()) {
            for (path, v) in ops.iter() {
                changes += 1;
                if let Some(why) = into_replaced(&root, path.get_ref()) {
                    fail(path.span(), why);
                    continue;
                }
                let o = if op == 0 {
                    Op::Set(v.clone())
                } else {
                    Op::Add(v.clone())
                };
                if let Err(why) = apply_one(&mut root, path.get_ref(), o) {
                    fail(path.span(), format!("`{key}` names nothing: {why}"));
                }
            }
        }
    }
    if let Some(DeValue::Table(ex)) = variant.get("expect").map(|v| v.get_ref()) {
        for (step, v) in ex.iter() {
            changes += 1;
            let path = format!("step[{}].expect", step.get_ref());
            if let Err(why) = apply_one(&mut root, &path, Op::Set(v.clone())) {
                fail(
                    v.span(),
                    format!(
                        "`expect` names step `{}`, which does not exist ({why})",
                        step.get_ref()
                    ),
                );
            }
        }
    }
    if changes == 0 {
        fail(
            variant_span,
            "this variant changes nothing: it names no node, step, field or expectation".into(),
        );
    }
    match (problems.is_empty(), root) {
        (true, DeValue::Table(t)) => Ok(t),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(src: &str) -> DeTable<'_> {
        DeTable::parse(src).unwrap().into_inner()
    }

    #[test]
    fn paths_split_with_brackets() {
        assert_eq!(
            segments("host[mail.example.com].dns").unwrap(),
            vec!["host", "mail.example.com", "dns"]
        );
        assert_eq!(segments("a.b").unwrap(), vec!["a", "b"]);
        assert!(segments("").is_none());
        assert!(segments("a[]").is_none());
    }

    #[test]
    fn set_remove_add_change_only_what_they_name() {
        let src = r#"
[[router]]
name = "edge"
[router.nat]
profile = "linux"
forwards = [{ name = "web", proto = "tcp", port = 80, to = "10.0.0.2" },
            { name = "smtp", proto = "tcp", port = 25, to = "10.0.0.3" }]
[[variant]]
name = "v"
remove = ["edge.nat.forwards.smtp"]
set = { "router.edge.nat.hairpin" = "on" }
add = { "edge.nat.forwards" = [{ name = "vpn", proto = "udp", port = 1194, to = "10.0.0.4" }] }
"#;
        let t = tree(src);
        let v = t["variant"].get_ref().as_array().unwrap()[0].clone();
        let DeValue::Table(vt) = v.get_ref() else {
            panic!()
        };
        let cx = Ctx {
            file: "t.toml",
            src,
        };
        let out = apply(&t, vt, v.span(), &cx).unwrap();
        let nat = out["router"].get_ref().as_array().unwrap()[0]
            .get_ref()
            .as_table()
            .unwrap()["nat"]
            .get_ref()
            .as_table()
            .unwrap()
            .clone();
        assert_eq!(nat["hairpin"].get_ref().as_str(), Some("on"));
        assert_eq!(nat["profile"].get_ref().as_str(), Some("linux"));
        let fw: Vec<_> = nat["forwards"]
            .get_ref()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| item_name(f.get_ref()).map(String::from))
            .collect();
        assert_eq!(fw, vec!["web", "vpn"]);
        assert!(!out.contains_key("variant"));
    }

    #[test]
    fn a_patch_that_names_nothing_is_located() {
        let src = "[[router]]\nname = \"edge\"\n[[variant]]\nname = \"v\"\nremove = [\"edge.nat.forwards.x\"]\n";
        let t = tree(src);
        let v = t["variant"].get_ref().as_array().unwrap()[0].clone();
        let DeValue::Table(vt) = v.get_ref() else {
            panic!()
        };
        let cx = Ctx {
            file: "t.toml",
            src,
        };
        let e = apply(&t, vt, v.span(), &cx).unwrap_err();
        assert_eq!(e[0].line, 5);
        assert!(e[0].message.contains("names nothing"), "{}", e[0].message);
    }

    fn nat_after(src: &str) -> Result<DeTable<'_>, Vec<Problem>> {
        let t = tree(src);
        let v = t["variant"].get_ref().as_array().unwrap()[0].clone();
        let DeValue::Table(vt) = v.get_ref() else {
            panic!()
        };
        let cx = Ctx {
            file: "t.toml",
            src,
        };
        apply(&t, vt, v.span(), &cx)
    }

    /// `forwards` is optional: a variant may add the first one.
    #[test]
    fn add_starts_a_list_the_file_left_out() {
        let src = r#"
[[router]]
name = "edge"
[router.nat]
profile = "linux"
[[variant]]
name = "v"
add = { "edge.nat.forwards" = [{ name = "vpn", proto = "udp", port = 1194, to = "10.0.0.4" }] }
"#;
        let out = nat_after(src).unwrap();
        let nat = out["router"].get_ref().as_array().unwrap()[0]
            .get_ref()
            .as_table()
            .unwrap()["nat"]
            .get_ref()
            .as_table()
            .unwrap()
            .clone();
        let fw = nat["forwards"].get_ref().as_array().unwrap();
        assert_eq!(fw.len(), 1);
        assert_eq!(item_name(fw.iter().next().unwrap().get_ref()), Some("vpn"));
    }

    /// Replacing a host and setting one of its fields in one variant: the
    /// one would silently win over the other.
    #[test]
    fn a_path_into_an_item_the_variant_replaces_is_refused() {
        let src = r#"
[[host]]
name = "mail"
address = "10.0.0.2/24"
[[variant]]
name = "v"
set = { "mail.address" = "10.0.0.3/24" }
[[variant.host]]
name = "mail"
address = "10.0.0.4/24"
"#;
        let e = nat_after(src).unwrap_err();
        assert!(
            e[0].message
                .contains("which this variant also replaces whole"),
            "{}",
            e[0].message
        );
    }
}
