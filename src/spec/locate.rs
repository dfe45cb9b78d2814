//! A pre-pass over the YAML events that (1) enforces the nesting and alias-expansion limits before serde
//! sees the text, and (2) records the line and column of every field path, so that errors found after
//! deserialization (semantic checks, missing files) can point at the line that caused them.
//!
//! Why a second parser (`yaml-rust2`): `serde_yaml` gives locations only for its own errors, and its
//! `Value` carries no spans. An event parser gives every node's position; mapping them to the same
//! path syntax as `serde_path_to_error` (`provisioners[1].shell.inline[0]`) joins the two.
//!
//! Guarantees: no recursion (an explicit stack), so arbitrarily deep input cannot overflow the stack;
//! stops at the first event over a limit, so hostile input costs time linear in what was read.
//! Caveats: if the two parsers disagree on some exotic input, only the location degrades.

use super::error::Location;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where one node sits: the key that names it (for mapping values) and the node itself.
#[derive(Clone, Copy, Debug)]
struct NodeLocation {
    key: Option<Location>,
    value: Location,
}

/// Field path → location, in `serde_path_to_error`'s path syntax.
#[derive(Debug, Default)]
pub(crate) struct LocationIndex {
    nodes: HashMap<String, NodeLocation>,
    /// Plain (unquoted, untagged) scalars by path, with their text: serde_yaml hands any scalar
    /// to a string field as text, so `type: null` would become the string "null"; the typed
    /// check ([`super::scalars`]) needs to know what was written unquoted.
    plain: HashMap<String, String>,
}

impl LocationIndex {
    /// The location of the key naming `path` (for mapping entries) or else of the node itself.
    pub(crate) fn key_or_node(&self, path: &str) -> Option<Location> {
        self.nodes.get(path).map(|n| n.key.unwrap_or(n.value))
    }

    /// The location of the node at `path` (its value, not its key).
    pub(crate) fn node(&self, path: &str) -> Option<Location> {
        self.nodes.get(path).map(|n| n.value)
    }

    /// The text of the unquoted, untagged scalar at `path`, if that is what the spec wrote there.
    pub(crate) fn plain_scalar(&self, path: &str) -> Option<&str> {
        self.plain.get(path).map(String::as_str)
    }

    /// The location of `path`, or of its nearest ancestor that has one.
    pub(crate) fn nearest(&self, path: &str) -> Option<Location> {
        let mut current = path;
        loop {
            if let Some(found) = self.key_or_node(current) {
                return Some(found);
            }
            current = parent_path(current)?;
        }
    }
}

/// `a.b[2]` → `a.b`; `a.b` → `a`; `a` → `` (the document); `` → none.
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Why the pre-pass refused the text.
#[derive(Debug)]
pub(crate) enum ScanRefusal {
    TooDeep(Location),
    TooManyNodes(Location),
    Syntax(Location, String),
}

/// One open collection during the walk.
struct Frame {
    path: String,
    kind: FrameKind,
    /// Expanded node count when this collection started, to size its anchor.
    nodes_at_start: u64,
    anchor: usize,
}

enum FrameKind {
    Mapping {
        expect_key: bool,
        key: Option<(String, Location)>,
    },
    Sequence {
        next_index: usize,
    },
}

struct Walk {
    index: LocationIndex,
    stack: Vec<Frame>,
    anchor_sizes: HashMap<usize, u64>,
    expanded_nodes: u64,
    max_depth: usize,
    max_nodes: u64,
}

/// Walks the events of `text`, enforcing the limits and indexing every field path.
pub(crate) fn scan(
    text: &str,
    max_depth: usize,
    max_nodes: u64,
) -> Result<LocationIndex, ScanRefusal> {
    let mut parser = Parser::new_from_str(text);
    let mut walk = Walk {
        index: LocationIndex::default(),
        stack: Vec::new(),
        anchor_sizes: HashMap::new(),
        expanded_nodes: 0,
        max_depth,
        max_nodes,
    };
    loop {
        let (event, marker) = parser
            .next_token()
            .map_err(|e| ScanRefusal::Syntax(location_of(e.marker()), e.info().to_string()))?;
        match event {
            Event::StreamEnd => return Ok(walk.index),
            Event::Scalar(value, style, anchor, tag) => {
                let plain = style == TScalarStyle::Plain && tag.is_none();
                walk.leaf(Some(value), plain, anchor, 1, marker)?
            }
            Event::Alias(id) => {
                let size = walk.anchor_sizes.get(&id).copied().unwrap_or(1);
                walk.leaf(None, false, 0, size, marker)?
            }
            Event::MappingStart(anchor, _) => walk.open(anchor, marker, true)?,
            Event::SequenceStart(anchor, _) => walk.open(anchor, marker, false)?,
            Event::MappingEnd | Event::SequenceEnd => walk.close(),
            _ => {}
        }
    }
}

impl Walk {
    /// Counts `size` expanded nodes and refuses when the total passes the limit.
    fn count(&mut self, size: u64, marker: Marker) -> Result<(), ScanRefusal> {
        self.expanded_nodes = self.expanded_nodes.saturating_add(size);
        if self.expanded_nodes > self.max_nodes {
            return Err(ScanRefusal::TooManyNodes(location_of(&marker)));
        }
        Ok(())
    }

    /// A scalar or alias: a key of the enclosing mapping, or a value to index.
    fn leaf(
        &mut self,
        scalar: Option<String>,
        plain: bool,
        anchor: usize,
        size: u64,
        marker: Marker,
    ) -> Result<(), ScanRefusal> {
        self.count(size, marker)?;
        if anchor != 0 {
            self.anchor_sizes.insert(anchor, 1);
        }
        match self.place(marker) {
            Placement::Key => self.set_key(scalar.unwrap_or_else(|| "?".into()), marker),
            Placement::Value(path) => {
                if let (true, Some(text)) = (plain, scalar) {
                    self.index.plain.insert(path, text);
                }
            }
        }
        Ok(())
    }

    fn open(&mut self, anchor: usize, marker: Marker, mapping: bool) -> Result<(), ScanRefusal> {
        self.count(1, marker)?;
        if self.stack.len() >= self.max_depth {
            return Err(ScanRefusal::TooDeep(location_of(&marker)));
        }
        let path = match self.place(marker) {
            Placement::Key => "?".to_string(), // complex key: walked but never looked up
            Placement::Value(path) => path,
        };
        let kind = if mapping {
            FrameKind::Mapping {
                expect_key: true,
                key: None,
            }
        } else {
            FrameKind::Sequence { next_index: 0 }
        };
        let nodes_at_start = self.expanded_nodes - 1;
        self.stack.push(Frame {
            path,
            kind,
            nodes_at_start,
            anchor,
        });
        Ok(())
    }

    fn close(&mut self) {
        if let Some(frame) = self.stack.pop() {
            if frame.anchor != 0 {
                let size = self.expanded_nodes - frame.nodes_at_start;
                self.anchor_sizes.insert(frame.anchor, size);
            }
        }
    }

    fn set_key(&mut self, key: String, marker: Marker) {
        let at = location_of(&marker);
        if let Some(Frame {
            path,
            kind: FrameKind::Mapping { key: slot, .. },
            ..
        }) = self.stack.last_mut()
        {
            *slot = Some((key, at));
            // A block mapping's start event is reported after its first key; the key is where it starts.
            if let Some(node) = self.index.nodes.get_mut(path.as_str()) {
                node.value = node.value.min(at);
            }
        }
    }

    /// Decides whether the node starting at `marker` is a mapping key or a value; indexes values.
    fn place(&mut self, marker: Marker) -> Placement {
        let value = location_of(&marker);
        let Some(frame) = self.stack.last_mut() else {
            self.index
                .nodes
                .insert(String::new(), NodeLocation { key: None, value });
            return Placement::Value(String::new());
        };
        let (path, key) = match &mut frame.kind {
            FrameKind::Mapping { expect_key, key } => {
                *expect_key = !*expect_key;
                if !*expect_key {
                    return Placement::Key;
                }
                let (name, at) = key.take().unwrap_or_else(|| ("?".into(), value));
                (join_key(&frame.path, &name), Some(at))
            }
            FrameKind::Sequence { next_index } => {
                *next_index += 1;
                (format!("{}[{}]", frame.path, *next_index - 1), None)
            }
        };
        self.index
            .nodes
            .entry(path.clone())
            .or_insert(NodeLocation { key, value });
        Placement::Value(path)
    }
}

enum Placement {
    Key,
    Value(String),
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn location_of(marker: &Marker) -> Location {
    Location {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> LocationIndex {
        scan(text, 64, 100_000).expect("scan")
    }

    #[test]
    fn keys_and_sequence_items_get_their_lines() {
        let text = "region: cn\ninstance:\n  type: x\nprovisioners:\n  - shell:\n      inline:\n        - a\n        - b\n";
        let idx = index(text);
        assert_eq!(
            idx.key_or_node("region"),
            Some(Location { line: 1, column: 1 })
        );
        assert_eq!(
            idx.key_or_node("instance.type"),
            Some(Location { line: 3, column: 3 })
        );
        assert_eq!(
            idx.node("instance.type"),
            Some(Location { line: 3, column: 9 })
        );
        assert_eq!(
            idx.key_or_node("provisioners[0].shell"),
            Some(Location { line: 5, column: 5 })
        );
        assert_eq!(
            idx.key_or_node("provisioners[0].shell.inline[1]"),
            Some(Location {
                line: 8,
                column: 11
            })
        );
    }

    #[test]
    fn flow_style_is_indexed_too() {
        let idx = index("image: {name: x, tags: {a: b}}\nlist: [1, 2]\n");
        assert_eq!(
            idx.key_or_node("image.tags.a"),
            Some(Location {
                line: 1,
                column: 25
            })
        );
        assert_eq!(
            idx.key_or_node("list[1]"),
            Some(Location {
                line: 2,
                column: 11
            })
        );
    }

    #[test]
    fn nearest_falls_back_to_an_ancestor() {
        let idx = index("image:\n  name: x\n");
        assert_eq!(
            idx.nearest("image.name.deeper[3]"),
            Some(Location { line: 2, column: 3 })
        );
        assert_eq!(
            idx.nearest("image.missing"),
            Some(Location { line: 1, column: 1 })
        );
    }

    #[test]
    fn parent_path_strips_one_segment() {
        assert_eq!(parent_path("a.b[2]"), Some("a.b"));
        assert_eq!(parent_path("a.b"), Some("a"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }

    #[test]
    fn deep_nesting_is_refused_at_the_limit() {
        let text = "[".repeat(100) + &"]".repeat(100);
        assert!(matches!(
            scan(&text, 64, 100_000),
            Err(ScanRefusal::TooDeep(_))
        ));
        let ok = "[".repeat(10) + &"]".repeat(10);
        assert!(scan(&ok, 64, 100_000).is_ok());
    }

    #[test]
    fn alias_expansion_is_counted_at_every_use() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut previous = 'a';
        for name in 'b'..='j' {
            let refs = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
            previous = name;
        }
        assert!(matches!(
            scan(&text, 64, 100_000),
            Err(ScanRefusal::TooManyNodes(_))
        ));
    }
}
