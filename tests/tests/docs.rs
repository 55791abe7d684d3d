//! The documentation's links hold: every relative link and image in README.md, CHANGELOG.md,
//! deploy/README.md and every `.md` under docs/ names a file that exists, and every `#anchor`
//! names a heading of its target (GitHub's slugs) or an explicit `<a id=...>` / `<a name=...>`.
//! Failures are listed all at once as `file:line`. External links are not fetched. Also: the
//! README, the front door, stays at most 250 lines.
//!
//! The Markdown is parsed by pulldown-cmark (CommonMark plus GitHub's tables), so a link inside a
//! code block or a code span is not a link here either.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

const README_MAX_LINES: usize = 250;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// GitHub's heading anchor: lower-cased; everything but letters, digits, `_`, `-` and spaces
/// removed; each space a `-`. (A repeated slug gets `-1`, `-2`, ...: see [`Page::anchors`].)
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A link as written, with the line it is on.
struct Link {
    line: usize,
    dest: String,
}

/// What one Markdown file offers (its anchors) and asks for (its links).
struct Page {
    anchors: HashSet<String>,
    links: Vec<Link>,
}

impl Page {
    fn parse(text: &str) -> Page {
        let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
        let explicit = regex::Regex::new(r#"<a\s+[^>]*?(?:id|name)\s*=\s*["']([^"']+)["']"#).unwrap();
        let mut anchors = HashSet::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut links = Vec::new();
        let mut heading: Option<String> = None;
        let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
        for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
            match event {
                Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
                Event::End(TagEnd::Heading(_)) => {
                    let base = slug(&heading.take().unwrap_or_default());
                    // GitHub numbers repeats: `notes`, `notes-1`, `notes-2`.
                    let n = seen.entry(base.clone()).or_insert(0);
                    anchors.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
                    *n += 1;
                }
                Event::Text(t) | Event::Code(t) => {
                    if let Some(h) = heading.as_mut() {
                        h.push_str(&t);
                    }
                }
                Event::Html(html) | Event::InlineHtml(html) => {
                    for c in explicit.captures_iter(&html) {
                        anchors.insert(c[1].to_string());
                    }
                }
                Event::Start(Tag::Link { dest_url, .. }) | Event::Start(Tag::Image { dest_url, .. }) => {
                    links.push(Link { line: line_of(range.start), dest: dest_url.to_string() })
                }
                _ => {}
            }
        }
        Page { anchors, links }
    }
}

/// `true` for a link with a scheme (`https:`, `mailto:`), which this check does not follow.
fn external(dest: &str) -> bool {
    match dest.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        None => dest.starts_with("//"),
    }
}

/// `%20` and friends, as a browser would undo them in a path or a fragment.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `a/b/../c` → `a/c`, without touching the file system (the target may not exist).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The Markdown files whose links are checked, relative to the root.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "CHANGELOG.md", "deploy/README.md"]
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| root.join(p).is_file())
        .collect();
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// Every broken link of the given pages, as `file:line: what`.
fn broken_links(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut parsed: BTreeMap<PathBuf, Page> = BTreeMap::new();
    let mut page = |rel: &Path| -> Option<HashSet<String>> {
        if !parsed.contains_key(rel) {
            let text = std::fs::read_to_string(root.join(rel)).ok()?;
            parsed.insert(rel.to_path_buf(), Page::parse(&text));
        }
        Some(parsed[rel].anchors.clone())
    };
    let mut errors = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for link in Page::parse(&text).links {
            let dest = link.dest.trim();
            if dest.is_empty() || external(dest) {
                continue;
            }
            let (path, fragment) = match dest.split_once('#') {
                Some((p, f)) => (p, Some(percent_decode(f))),
                None => (dest, None),
            };
            let path = percent_decode(path.split('?').next().unwrap_or(""));
            let target = if path.is_empty() {
                file.clone()
            } else if let Some(abs) = path.strip_prefix('/') {
                normalise(Path::new(abs)) // GitHub: `/x` is the repository's root
            } else {
                normalise(&file.parent().unwrap_or(Path::new("")).join(&path))
            };
            let at = format!("{}:{}", file.display(), link.line);
            if !root.join(&target).exists() {
                errors.push(format!("{at}: `{dest}`: {} does not exist", target.display()));
                continue;
            }
            let Some(fragment) = fragment.filter(|f| !f.is_empty()) else { continue };
            // Anchors are only checked in Markdown; `#L10` in a source file is GitHub's line link.
            if target.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let anchors = page(&target).unwrap_or_default();
            if !anchors.contains(&fragment) && !anchors.contains(&fragment.to_lowercase()) {
                errors.push(format!("{at}: `{dest}`: {} has no heading or anchor `#{fragment}`", target.display()));
            }
        }
    }
    errors
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let root = root();
    let files = pages(&root);
    assert!(files.iter().any(|f| f == Path::new("README.md")), "README.md is missing");
    let errors = broken_links(&root, &files);
    assert!(
        errors.is_empty(),
        "{} broken link(s) in {} Markdown files:\n{}",
        errors.len(),
        files.len(),
        errors.join("\n")
    );
}

#[test]
fn the_readme_is_a_front_door_of_at_most_250_lines() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, over {README_MAX_LINES}: move the detail into docs/ (docs/README.md is the index)"
    );
}

#[test]
fn headings_become_githubs_slugs() {
    assert_eq!(
        slug("Time: future-dated events, rescheduling, cancelling, out of order"),
        "time-future-dated-events-rescheduling-cancelling-out-of-order"
    );
    assert_eq!(slug("6. SCIM 2.0 (producer, intake listener)"), "6-scim-20-producer-intake-listener");
    assert_eq!(slug("POST /v1/events"), "post-v1events");
    assert_eq!(slug("Dependencies, and why"), "dependencies-and-why");
    assert_eq!(slug("snake_case stays"), "snake_case-stays");
    assert_eq!(slug("Über Größe"), "über-größe", "letters beyond ASCII are kept, lower-cased");
    assert_eq!(slug("a  b"), "a--b", "each space is a hyphen; runs are not collapsed");
    assert_eq!(slug("Q&A — what's new?"), "qa--whats-new");
}

#[test]
fn headings_in_markup_and_repeats_are_numbered_as_github_does() {
    let page = Page::parse(
        "# The `POST /v1/events` call\n\n## Notes\n\n## Notes\n\n## Notes\n\n<a id=\"kept-anchor\"></a>\n\n## *Emphasis* [and a link](x.md)\n",
    );
    for anchor in ["the-post-v1events-call", "notes", "notes-1", "notes-2", "kept-anchor", "emphasis-and-a-link"] {
        assert!(page.anchors.contains(anchor), "missing #{anchor} in {:?}", page.anchors);
    }
    assert!(!page.anchors.contains("notes-3"));
}

#[test]
fn a_broken_link_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("docs/a")).unwrap();
    std::fs::write(root.join("docs/b.md"), "# Bee\n\n## Two words\n").unwrap();
    std::fs::write(
        root.join("docs/a/page.md"),
        "# Page\n\n[ok](../b.md#two-words) [ok too](#page) [web](https://example.com/x#y)\n\n\
         [gone](../missing.md)\n[bad anchor](../b.md#three-words)\n\n```text\n[in code](nowhere.md)\n```\n\
         [self](#nothing-here) `[code span](nowhere.md)`\n",
    )
    .unwrap();
    let errors = broken_links(root, &[PathBuf::from("docs/a/page.md")]);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("docs/a/page.md:5: `../missing.md`"), "{}", errors[0]);
    assert!(errors[1].starts_with("docs/a/page.md:6: `../b.md#three-words`"), "{}", errors[1]);
    assert!(errors[2].starts_with("docs/a/page.md:11: `#nothing-here`"), "{}", errors[2]);
}

#[test]
fn schemes_are_external_and_paths_are_not() {
    assert!(external("https://example.com"));
    assert!(external("mailto:security@example.com"));
    assert!(!external("docs/contract.md#1-intake"));
    assert!(!external("../contract.md"));
    assert!(!external("#anchor"));
    assert_eq!(percent_decode("a%20b"), "a b");
    assert_eq!(normalise(Path::new("docs/engineers/../contract.md")), PathBuf::from("docs/contract.md"));
}
