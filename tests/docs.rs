//! The documentation kept in step with the code.
//!
//! `docs/configuration.md` and `examples/rp-devops.yml` against the config
//! structs of `src/config.rs`: the structs' keys are read from the structs
//! themselves (a probing serde `Deserializer` asks `Config`'s derived
//! `Deserialize` for every field of every section), so a key added to a
//! struct without a line in the doc and in the example fails here, and so
//! does a doc row or an example key the structs do not have.
//!
//! And the repository points nowhere outside itself (SPEC §12).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use rp_devops::config::Config;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

type Error = de::value::Error;

/// What the probe learnt: every key path, and which of them are sections
/// (structs or maps) rather than values. A map's entries are `NAME`.
#[derive(Default)]
struct Keys {
    all: BTreeSet<String>,
    sections: BTreeSet<String>,
    maps: BTreeSet<String>,
}

impl Keys {
    fn leaves(&self) -> BTreeSet<String> {
        self.all.difference(&self.sections).cloned().collect()
    }
}

/// A `Deserializer` with no input: it answers a struct with every one of
/// its fields (recording their paths), an option with `Some`, a map with
/// one entry named `NAME`, and values with something each field accepts.
struct Probe<'a> {
    path: String,
    keys: &'a RefCell<Keys>,
}

impl<'a> Probe<'a> {
    fn child(&self, name: &str) -> Probe<'a> {
        let path = if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        };
        self.keys.borrow_mut().all.insert(path.clone());
        Probe {
            path,
            keys: self.keys,
        }
    }
}

/// The entries of a probed struct (its fields) or map (`NAME`).
struct Entries<'a> {
    parent: Probe<'a>,
    names: Vec<&'static str>,
    next: usize,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize((*name).into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let name = self.names[self.next];
        self.next += 1;
        seed.deserialize(self.parent.child(name))
    }
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Untagged helpers (sizes: a number or a text) take a number.
        visitor.visit_u64(1)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(true)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Parsed texts (durations) accept this too.
        visitor.visit_str("1s")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(de::value::SeqDeserializer::<_, Error>::new(
            std::iter::empty::<u64>(),
        ))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        {
            let mut keys = self.keys.borrow_mut();
            keys.sections.insert(self.path.clone());
            keys.maps.insert(self.path.clone());
        }
        visitor.visit_map(Entries {
            parent: self,
            names: vec!["NAME"],
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.keys.borrow_mut().sections.insert(self.path.clone());
        visitor.visit_map(Entries {
            parent: self,
            names: fields.to_vec(),
            next: 0,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(variants[0].into_deserializer())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// Every key of `rp-devops.yml`, from the structs.
fn struct_keys() -> Keys {
    let keys = RefCell::new(Keys::default());
    Config::deserialize(Probe {
        path: String::new(),
        keys: &keys,
    })
    .expect("the probe answers every field");
    keys.into_inner()
}

/// The key paths of a YAML document (entries of maps named `NAME`), leaves only.
fn yaml_leaves(value: &serde_norway::Value, path: &str, keys: &Keys, out: &mut BTreeSet<String>) {
    let Some(mapping) = value.as_mapping() else {
        out.insert(path.to_owned());
        return;
    };
    for (key, child) in mapping {
        let name = if keys.maps.contains(path) {
            "NAME"
        } else {
            key.as_str().unwrap_or_default()
        };
        let child_path = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        if child.as_mapping().is_some_and(|m| m.is_empty()) {
            continue;
        }
        yaml_leaves(child, &child_path, keys, out);
    }
}

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Keys the example shows only in a comment, because setting them next to
/// their alternative is an error: (key, the comment line that shows it).
const COMMENTED_IN_EXAMPLE: &[(&str, &str)] = &[("freshdesk.url", "# url:")];

#[test]
fn the_example_config_has_every_key_of_the_structs() {
    let keys = struct_keys();
    let text = repo_file("examples/rp-devops.yml");
    Config::parse(&text, Path::new("examples/rp-devops.yml")).expect("the example parses");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let mut in_example = BTreeSet::new();
    yaml_leaves(&yaml, "", &keys, &mut in_example);
    for (key, comment) in COMMENTED_IN_EXAMPLE {
        assert!(
            text.contains(comment),
            "{key}: no `{comment}` in the example"
        );
        in_example.insert((*key).to_owned());
    }
    let missing: Vec<_> = keys.leaves().difference(&in_example).cloned().collect();
    assert!(
        missing.is_empty(),
        "examples/rp-devops.yml lacks {missing:?}"
    );
    let unknown: Vec<_> = in_example.difference(&keys.leaves()).cloned().collect();
    assert!(unknown.is_empty(), "not config keys: {unknown:?}");
}

#[test]
fn the_configuration_reference_lists_every_key_and_no_other() {
    let keys = struct_keys();
    let doc = repo_file("docs/configuration.md");
    // Rows of the key tables: "| `races.labels` | ...".
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(key, _)| key.to_owned())
        .filter(|key| key.contains('.'))
        .collect();
    let missing: Vec<_> = keys.leaves().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no row for {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&keys.leaves()).cloned().collect();
    assert!(
        stale.is_empty(),
        "docs/configuration.md documents keys the config does not have: {stale:?}"
    );
    // Every section has its heading.
    for section in keys
        .sections
        .iter()
        .filter(|s| !s.is_empty() && !s.contains('.'))
    {
        assert!(
            doc.contains(&format!("### `{section}:`")),
            "docs/configuration.md has no `### `{section}:`` heading"
        );
    }
}

/// Text files of the repository (what git tracks), without generated ones.
fn tracked_files() -> Vec<String> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn nothing_in_the_repository_points_outside_it() {
    let mut offenders = Vec::new();
    for file in tracked_files() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binary (screenshots)
        };
        // This file names the pattern it looks for.
        if file == "tests/docs.rs" {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if line.contains("../shared") || line.contains("shared/SPEC") {
                offenders.push(format!("{file}:{}: {line}", n + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// Relative links in the Markdown docs name files that exist.
#[test]
fn markdown_links_resolve() {
    let link = regex::Regex::new(r"\]\(([^)#\s]+)(#[^)]*)?\)").expect("regex");
    let mut broken = Vec::new();
    for file in tracked_files().into_iter().filter(|f| f.ends_with(".md")) {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join(&file);
        let text = std::fs::read_to_string(&base).unwrap_or_default();
        for cap in link.captures_iter(&text) {
            let target = &cap[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let dir = base.parent().expect("a file has a directory");
            if !dir.join(target).exists() {
                broken.push(format!("{file}: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every marker the code writes (`<!-- rp-devops:NAME`) is explained in
/// docs/markers.md.
#[test]
fn every_marker_is_documented() {
    let doc = repo_file("docs/markers.md");
    let marker = regex::Regex::new(r"<!-- rp-devops:([a-z][a-z-]*)").expect("regex");
    let mut names = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                // Unit tests spell near-misses on purpose.
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                names.extend(marker.captures_iter(text).map(|c| c[1].to_owned()));
            }
        }
    }
    assert!(names.contains("race"), "{names:?}");
    let missing: Vec<_> = names
        .iter()
        .filter(|name| !doc.contains(&format!("<!-- rp-devops:{name} ")))
        .collect();
    assert!(missing.is_empty(), "docs/markers.md lacks {missing:?}");
}
