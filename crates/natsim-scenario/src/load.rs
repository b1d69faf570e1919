//! Reading a scenario file: syntax and types (the `toml` crate, with
//! spans), variants applied as patches ([`crate::patch`]), then lowered
//! to the typed [`Model`] ([`crate::lower`]) and linted ([`crate::lint`]),
//! for the base scenario and every variant.
//!
//! Hard limits (hostile files get a located error, never unbounded work):
//! file ≤ 1 MiB; ≤ 64 segments, 64 routers, 16 384 hosts (groups
//! included), 16 interfaces per router, 256 steps, 64 variants, 1024 DNS
//! records, FTP files ≤ 16 MiB; durations ≤ 30 days; MTU 576–9000; loss
//! in [0, 1].

use crate::diag::{Ctx, Problem};
use crate::model::Model;
use crate::schema::Scenario;
use serde::Deserialize;
use std::collections::BTreeSet;
use toml::de::{DeTable, DeValue};

pub const MAX_FILE: usize = 1 << 20;

/// A loaded scenario file: the base scenario and each variant as a typed
/// model, plus the warnings lint found.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub file: String,
    pub src: String,
    pub base: Model,
    pub variants: Vec<LoadedVariant>,
    pub warnings: Vec<Problem>,
}

#[derive(Clone, Debug)]
pub struct LoadedVariant {
    pub name: String,
    pub model: Model,
}

/// One runnable variant: `base` or a named one.
#[derive(Clone, Copy, Debug)]
pub struct VariantRef<'a> {
    pub name: &'a str,
    pub model: &'a Model,
}

impl Loaded {
    /// `base`, then each variant in file order.
    pub fn variants(&self) -> Vec<VariantRef<'_>> {
        std::iter::once(VariantRef {
            name: "base",
            model: &self.base,
        })
        .chain(self.variants.iter().map(|v| VariantRef {
            name: &v.name,
            model: &v.model,
        }))
        .collect()
    }

    /// The variant called `name` (`base` is the base scenario).
    pub fn variant(&self, name: &str) -> Option<VariantRef<'_>> {
        self.variants().into_iter().find(|v| v.name == name)
    }
}

fn too_big(cx: &Ctx<'_>, len: usize) -> Problem {
    cx.at(
        0..0,
        format!("the file is {len} bytes; scenarios may be at most {MAX_FILE} bytes"),
        Some("split it into several scenarios"),
    )
}

/// Reads `path` and loads it.
pub fn load_file(path: &std::path::Path) -> Result<Loaded, Vec<Problem>> {
    let file = path.display().to_string();
    let io = |e: std::io::Error| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => format!("cannot read: {e}"),
        };
        vec![Problem::whole_file(&file, what)]
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() as usize > MAX_FILE {
        return Err(vec![too_big(
            &Ctx {
                file: &file,
                src: "",
            },
            meta.len() as usize,
        )]);
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let src = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).to_string();
        vec![Ctx {
            file: &file,
            src: &text,
        }
        .at(
            at..at + 1,
            "the file is not valid UTF-8",
            Some("save it as UTF-8"),
        )]
    })?;
    load_str(&file, &src)
}

fn toml_problem(cx: &Ctx<'_>, e: &toml::de::Error) -> Problem {
    let span = e.span().unwrap_or(0..0);
    let msg = e.message().trim().replace('\n', " ");
    let hint = if msg.contains("unknown field") {
        Some("check the spelling against docs/scenarios.md (or `natsim schema`)")
    } else if msg.contains("missing field") {
        Some("add the field; docs/scenarios.md lists every table's required fields")
    } else if msg.contains("invalid type") {
        Some("check the value's type (string, integer, table, array) in docs/scenarios.md")
    } else {
        None
    };
    cx.at(span, msg, hint)
}

fn typed(
    cx: &Ctx<'_>,
    tree: DeTable<'_>,
    span: std::ops::Range<usize>,
) -> Result<Scenario, Problem> {
    let de = toml::de::Deserializer::from(toml::Spanned::new(span, tree));
    Scenario::deserialize(de).map_err(|e| toml_problem(cx, &e))
}

/// One variant's model, or its problems.
fn model_of(
    cx: &Ctx<'_>,
    tree: DeTable<'_>,
    span: std::ops::Range<usize>,
) -> Result<(Model, Vec<Problem>), Vec<Problem>> {
    let s = typed(cx, tree, span).map_err(|p| vec![p])?;
    let (m, mut warnings) = crate::lower::lower(&s, cx)?;
    warnings.extend(crate::lint::lint(&s, &m, cx));
    Ok((m, warnings))
}

/// Parses, patches, lowers and lints `src` (named `file` in messages).
/// `Err` holds every problem, warnings included; `Ok` carries warnings.
pub fn load_str(file: &str, src: &str) -> Result<Loaded, Vec<Problem>> {
    let cx = Ctx { file, src };
    if src.len() > MAX_FILE {
        return Err(vec![too_big(&cx, src.len())]);
    }
    let root = DeTable::parse(src).map_err(|e| vec![toml_problem(&cx, &e)])?;
    let whole = root.span();
    let root = root.into_inner();
    // The whole file against the format first: unknown fields, types.
    let all = typed(&cx, root.clone(), whole.clone()).map_err(|p| vec![p])?;
    limits(&cx, &all)?;
    let mut problems = Vec::new();
    let mut base_tree = root.clone();
    base_tree.remove("variant");
    let base = match model_of(&cx, base_tree, whole.clone()) {
        Ok((m, lints)) => {
            problems.extend(lints);
            Some(m)
        }
        Err(ps) => {
            problems.extend(ps);
            None
        }
    };
    let mut variants = Vec::new();
    let mut seen = BTreeSet::new();
    let list = root
        .get("variant")
        .and_then(|v| v.get_ref().as_array())
        .map(|a| a.iter().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    for (v, typed_v) in list.iter().zip(&all.variants) {
        let DeValue::Table(vt) = v.get_ref() else {
            continue;
        };
        let name = typed_v.name.get_ref();
        if name == "base" {
            problems.push(cx.at(
                typed_v.name.span(),
                "a variant cannot be called `base`: that is the scenario itself",
                Some("name the variant after what it changes"),
            ));
            continue;
        }
        if !seen.insert(name.clone()) {
            problems.push(cx.at(
                typed_v.name.span(),
                format!("variant `{name}` is defined twice"),
                Some("give each variant its own name"),
            ));
            continue;
        }
        let tree = match crate::patch::apply(&root, vt, v.span(), &cx) {
            Ok(t) => t,
            Err(ps) => {
                problems.extend(ps);
                continue;
            }
        };
        match model_of(&cx, tree, whole.clone()) {
            Ok((model, lints)) => {
                problems.extend(lints);
                variants.push(LoadedVariant {
                    name: name.clone(),
                    model,
                });
            }
            Err(ps) => problems.extend(ps),
        }
    }
    // The same problem found in the base and in a variant is one problem.
    let mut uniq = BTreeSet::new();
    problems.retain(|p| uniq.insert((p.span.start, p.message.clone())));
    problems.sort_by_key(|p| (p.span.start, p.severity));
    match base {
        Some(base) if !problems.iter().any(|p| !p.is_warning()) => Ok(Loaded {
            file: file.into(),
            src: src.into(),
            base,
            variants,
            warnings: problems,
        }),
        _ => Err(problems),
    }
}

fn limits(cx: &Ctx<'_>, s: &Scenario) -> Result<(), Vec<Problem>> {
    let whole = 0..cx.src.len().min(1);
    let mut out = Vec::new();
    let mut check = |n: usize, max: usize, what: &str| {
        if n > max {
            out.push(cx.at(
                whole.clone(),
                format!("{n} {what}; at most {max} are allowed"),
                Some("split the scenario into several files"),
            ));
        }
    };
    check(s.segments.len(), 64, "segments");
    check(s.routers.len(), 64, "routers");
    check(s.hosts.len(), crate::lower::MAX_HOSTS, "hosts");
    check(s.host_groups.len(), 64, "host groups");
    check(s.steps.len(), 256, "steps");
    check(s.variants.len(), 64, "variants");
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}
