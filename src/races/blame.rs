//! Who last changed the lines of a race's two accesses: from a frame's file
//! to a path in the repository, and the "Last changed" section of a new
//! race issue.
//!
//! Pure: the GitLab reads (the project, `go.mod`, blame) are the
//! operation's; this module decides which repository path a frame names
//! and renders the answers. Frame paths come from logs and are hostile: a
//! path with `..` or `.` segments, empty segments, a backslash, a `%` (an
//! encoded slash) or a control character never maps to a repository path,
//! so it can never name a different file than the one printed.

use super::Runtime;
use super::input::AccessSite;
use super::issue::inline_code;

/// Longest repository path asked about.
const MAX_PATH: usize = 1024;

/// How frame paths map to repository paths in one project.
#[derive(Debug, Clone)]
pub struct SourceMap {
    /// Build directories stripped from frame paths (`races.source_prefixes`,
    /// `CI_PROJECT_DIR`), each ending in `/`.
    prefixes: Vec<String>,
    /// The project's full path (`group/sub/project`): a runner's
    /// `…/builds/…/group/sub/project/` is stripped too.
    project_path: String,
    /// The Go module path of the repository (`go.mod`), once read.
    module: Module,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Module {
    NotRead,
    None,
    Path(String),
}

/// Where a frame's file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// This path in the repository.
    Repository(String),
    /// Not a file of the repository as far as can be told (the standard
    /// library, a system header, a path under no known build directory).
    Outside,
    /// A Go frame that the module path in `go.mod` may place: read it, give
    /// it to [`SourceMap::set_module`], and ask again.
    NeedsModule,
}

impl SourceMap {
    pub fn new(prefixes: &[String], project_path: &str) -> Self {
        let prefixes = prefixes
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut p = p.to_owned();
                if !p.ends_with('/') {
                    p.push('/');
                }
                p
            })
            .collect();
        Self {
            prefixes,
            project_path: project_path.trim_matches('/').to_owned(),
            module: Module::NotRead,
        }
    }

    /// The module path read from `go.mod` (`None`: no `go.mod`, or no
    /// `module` line in it).
    pub fn set_module(&mut self, module: Option<String>) {
        self.module = module.map_or(Module::None, Module::Path);
    }

    /// The repository path of `file`, a frame's file as printed, whose
    /// function (as printed) is `function`.
    pub fn map(&self, file: &str, function: &str, runtime: Runtime) -> Mapping {
        if !plausible_path(file) {
            return Mapping::Outside;
        }
        for prefix in &self.prefixes {
            if let Some(rest) = file.strip_prefix(prefix.as_str()) {
                return repository(rest);
            }
        }
        if let Some(rest) = self.under_builds_dir(file) {
            return repository(rest);
        }
        if runtime != Runtime::Go || !file.ends_with(".go") {
            return Mapping::Outside;
        }
        let module = match &self.module {
            Module::NotRead => return Mapping::NeedsModule,
            Module::None => return Mapping::Outside,
            Module::Path(module) => module,
        };
        // `go build -trimpath` prints module path + file.
        if let Some(rest) = file
            .strip_prefix(module.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            return repository(rest);
        }
        // Otherwise the function's package says where in the module it is.
        let package = go_package(function);
        let dir = if package == module {
            Some("")
        } else {
            package
                .strip_prefix(module.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        let (Some(dir), Some(name)) = (dir, file.rsplit('/').next()) else {
            return Mapping::Outside;
        };
        if dir.is_empty() {
            repository(name)
        } else {
            repository(&format!("{dir}/{name}"))
        }
    }

    /// The rest of `file` after a GitLab runner's `…/builds/…/PROJECT_PATH/`.
    fn under_builds_dir<'a>(&self, file: &'a str) -> Option<&'a str> {
        if self.project_path.is_empty() {
            return None;
        }
        let builds = file.find("/builds/")?;
        let after = &file[builds + "/builds/".len()..];
        let wanted = format!("{}/", self.project_path);
        let mut from = 0;
        while let Some(at) = after[from..].find(&wanted) {
            let at = from + at;
            if at == 0 || after.as_bytes()[at - 1] == b'/' {
                return Some(&after[at + wanted.len()..]);
            }
            from = at + 1;
        }
        None
    }
}

/// `rest` as a repository path, if it is a clean relative one.
fn repository(rest: &str) -> Mapping {
    if rest.is_empty()
        || rest.len() > MAX_PATH
        || rest.starts_with('/')
        || rest
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Mapping::Outside;
    }
    Mapping::Repository(rest.to_owned())
}

/// A frame path that can be taken at its word: no `.`/`..` segments, no
/// backslash, no `%` (an encoded slash or dot), no control characters.
fn plausible_path(file: &str) -> bool {
    !file.is_empty()
        && file.len() <= 4 * MAX_PATH
        && !file
            .chars()
            .any(|c| c == '\\' || c == '%' || c.is_control())
        && !file
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// The package path of a Go function as printed:
/// `example.com/app/store.(*Inventory).Add()` → `example.com/app/store`.
fn go_package(function: &str) -> &str {
    let last_slash = function.rfind('/').map_or(0, |i| i + 1);
    match function[last_slash..].find('.') {
        Some(dot) => &function[..last_slash + dot],
        None => function,
    }
}

/// The module path of a `go.mod` file.
pub fn go_module(go_mod: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let line = line.split("//").next().unwrap_or_default().trim();
        let rest = line.strip_prefix("module")?;
        if !rest.starts_with([' ', '\t', '"']) {
            return None;
        }
        let module = rest.trim().trim_matches('"').trim();
        (!module.is_empty() && !module.contains(char::is_whitespace)).then(|| module.to_owned())
    })
}

/// The file and line of a frame's location as printed: Go's
/// `/src/x.go:12 +0x1f`, ThreadSanitizer's `x.cc:12:5` or `x.cc:12`.
pub fn file_and_line(location: &str, runtime: Runtime) -> Option<(&str, u32)> {
    let place = match runtime {
        Runtime::Go => location
            .rsplit_once(" +0x")
            .map_or(location, |(place, _)| place),
        Runtime::ThreadSanitizer => location,
    };
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|n| (1..=10_000_000).contains(n))
    };
    let (rest, last) = place.rsplit_once(':')?;
    let last = number(last)?;
    if runtime == Runtime::ThreadSanitizer {
        // `file:line:column`: the line is the one before.
        if let Some((file, line)) = rest.rsplit_once(':') {
            if let Some(line) = number(line) {
                return (!file.is_empty()).then_some((file, line));
            }
        }
    }
    (!rest.is_empty()).then_some((rest, last))
}

/// The commit that last changed a line, as shown in an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLine {
    pub short_id: String,
    /// The commit's page in GitLab.
    pub url: Option<String>,
    pub author: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The first line of the commit message.
    pub subject: String,
}

/// What is known about who last changed one access's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlameOutcome {
    Commit(CommitLine),
    /// GitLab has no such file or line on the default branch.
    NotOnBranch {
        branch: String,
    },
    /// The file is not in the repository as far as can be told.
    OutsideRepository,
    /// The report gave no file and line for the frame.
    NoLocation,
    /// Blame could not be read (a warning says why).
    Unavailable,
}

/// One access of a race and who last changed its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastChanged {
    pub site: AccessSite,
    /// The repository path and line asked about, when the frame maps to one.
    pub path: Option<(String, u32)>,
    pub outcome: BlameOutcome,
}

/// The "Last changed" section of a new race issue, one line per access.
pub fn render_last_changed(entries: &[LastChanged]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let mut out = String::from("#### Last changed\n\n");
    for entry in entries {
        let where_ = match (&entry.path, &entry.site.location) {
            (Some((path, line)), _) => format!(" at {}", inline_code(&format!("{path}:{line}"))),
            (None, Some(location)) => format!(" at {}", inline_code(location)),
            (None, None) => String::new(),
        };
        let what = match &entry.outcome {
            BlameOutcome::Commit(commit) => {
                let id = inline_code(&commit.short_id);
                let id = match &commit.url {
                    Some(url) => format!("[{id}]({url})"),
                    None => id,
                };
                format!(
                    "{id} by {} on {}: {}",
                    plain(&commit.author, 100),
                    plain(&commit.date, 10),
                    plain(&commit.subject, 200)
                )
            }
            BlameOutcome::NotOnBranch { branch } => format!(
                "not in the repository's {} branch (vendored, generated, or changed since)",
                inline_code(branch)
            ),
            BlameOutcome::OutsideRepository => {
                "outside the repository (the standard library, a system or vendored file, or a build directory rp-devops does not know: see `races.source_prefixes`)".to_owned()
            }
            BlameOutcome::NoLocation => "the report gives no file and line".to_owned(),
            BlameOutcome::Unavailable => "blame could not be read".to_owned(),
        };
        out.push_str(&format!(
            "- **{}** in {}{where_}: {what}\n",
            plain(&entry.site.access, 60),
            inline_code(&entry.site.function),
        ));
    }
    out
}

/// Text from GitLab or a log shown as plain Markdown text on one line:
/// control characters and HTML made harmless, at most `max` characters.
fn plain(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    line.trim()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(prefixes: &[&str], module: Option<&str>) -> SourceMap {
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        let mut map = SourceMap::new(&prefixes, "restorepoint/product");
        if let Some(module) = module {
            map.set_module(Some(module.to_owned()));
        }
        map
    }

    fn repo(path: &str) -> Mapping {
        Mapping::Repository(path.to_owned())
    }

    #[test]
    fn runner_build_directories_are_stripped() {
        let m = map(&[], None);
        let go = |file: &str| m.map(file, "main.main()", Runtime::Go);
        assert_eq!(
            go("/builds/restorepoint/product/internal/store/store.go"),
            repo("internal/store/store.go")
        );
        // The shell executor's layout: builds/TOKEN/N/GROUP/PROJECT.
        assert_eq!(
            go("/home/gitlab-runner/builds/x1y2z3/0/restorepoint/product/cmd/main.go"),
            repo("cmd/main.go")
        );
        // Another project's build directory is not ours.
        assert_eq!(
            go("/builds/restorepoint/other-product/x.go"),
            Mapping::NeedsModule
        );
        assert_eq!(
            m.map(
                "/builds/restorepoint/product2/x.cc",
                "f()",
                Runtime::ThreadSanitizer
            ),
            Mapping::Outside
        );
    }

    #[test]
    fn configured_prefixes_come_first() {
        let m = map(&["/src/app", " /opt/build/ "], None);
        let tsan = |file: &str| m.map(file, "worker()", Runtime::ThreadSanitizer);
        assert_eq!(tsan("/src/app/core/worker.cc"), repo("core/worker.cc"));
        assert_eq!(tsan("/opt/build/tsan.cpp"), repo("tsan.cpp"));
        assert_eq!(tsan("/usr/include/c++/12/thread"), Mapping::Outside);
        assert_eq!(tsan("/src/application/x.cc"), Mapping::Outside);
    }

    #[test]
    fn go_modules_place_trimmed_and_absolute_paths() {
        let m = map(&[], Some("example.com/racegen"));
        assert_eq!(
            m.map(
                "example.com/racegen/internal/store/store.go",
                "example.com/racegen/internal/store.(*Inventory).Add()",
                Runtime::Go
            ),
            repo("internal/store/store.go")
        );
        assert_eq!(
            m.map(
                "/home/ci/checkout/internal/store/store.go",
                "example.com/racegen/internal/store.(*Inventory).Add()",
                Runtime::Go
            ),
            repo("internal/store/store.go")
        );
        // The module's root package.
        assert_eq!(
            m.map(
                "/home/ci/checkout/racegen.go",
                "example.com/racegen.Run()",
                Runtime::Go
            ),
            repo("racegen.go")
        );
        // A vendored package is where the vendor directory is.
        assert_eq!(
            m.map(
                "/home/ci/checkout/vendor/github.com/x/y/pool.go",
                "example.com/racegen/vendor/github.com/x/y.(*Pool).Get()",
                Runtime::Go
            ),
            repo("vendor/github.com/x/y/pool.go")
        );
        // The standard library and other modules are not ours.
        for (file, function) in [
            ("/usr/local/go/src/sync/mutex.go", "sync.(*Mutex).Lock()"),
            (
                "/root/go/pkg/mod/github.com/x/y@v1.2.0/y.go",
                "github.com/x/y.Do()",
            ),
            ("/home/ci/checkout/cmd/counter/main.go", "main.main.func1()"),
            (
                "/home/ci/example.com/racegenx/a.go",
                "example.com/racegenx.F()",
            ),
        ] {
            assert_eq!(
                m.map(file, function, Runtime::Go),
                Mapping::Outside,
                "{file}"
            );
        }
        let mut none = map(&[], None);
        assert_eq!(
            none.map("/x/a.go", "example.com/racegen.F()", Runtime::Go),
            Mapping::NeedsModule
        );
        none.set_module(None);
        assert_eq!(
            none.map("/x/a.go", "example.com/racegen.F()", Runtime::Go),
            Mapping::Outside
        );
    }

    #[test]
    fn hostile_paths_never_name_another_file() {
        let m = map(&["/src/"], Some("example.com/racegen"));
        for file in [
            "/builds/restorepoint/product/../other/secret.go",
            "/builds/restorepoint/product/./x.go",
            "/builds/restorepoint/product//x.go",
            "/builds/restorepoint/product/a%2F..%2Fb.go",
            "/builds/restorepoint/product/a%2e%2e/b.go",
            "/builds/restorepoint/product/a\\..\\b.go",
            "/builds/restorepoint/product/x.go\n/close",
            "/src/../etc/passwd",
            "/src//etc/passwd",
            "example.com/racegen/../../x.go",
            "/builds/restorepoint/product/",
        ] {
            assert_eq!(
                m.map(file, "example.com/racegen/x.F()", Runtime::Go),
                Mapping::Outside,
                "{file:?}"
            );
        }
        assert_eq!(
            m.map("/h/x.go", "example.com/racegen/../../etc.F()", Runtime::Go),
            Mapping::Outside
        );
    }

    #[test]
    fn go_mod_module_lines() {
        assert_eq!(
            go_module("// comment\nmodule example.com/racegen // here\n\ngo 1.22\n").as_deref(),
            Some("example.com/racegen")
        );
        assert_eq!(
            go_module("module \"example.com/quoted\"\n").as_deref(),
            Some("example.com/quoted")
        );
        assert_eq!(go_module("go 1.22\n"), None);
        assert_eq!(go_module("modules x\n"), None);
    }

    #[test]
    fn locations_give_file_and_line() {
        assert_eq!(
            file_and_line("/builds/x/main.go:13 +0x159", Runtime::Go),
            Some(("/builds/x/main.go", 13))
        );
        assert_eq!(
            file_and_line("C:/src/app/main.go:7", Runtime::Go),
            Some(("C:/src/app/main.go", 7))
        );
        assert_eq!(
            file_and_line("src/foo.cc:12:5", Runtime::ThreadSanitizer),
            Some(("src/foo.cc", 12))
        );
        assert_eq!(
            file_and_line("/builds/x/tsan.cpp:6", Runtime::ThreadSanitizer),
            Some(("/builds/x/tsan.cpp", 6))
        );
        assert_eq!(file_and_line("<autogenerated>:0", Runtime::Go), None);
        assert_eq!(file_and_line("main.go", Runtime::Go), None);
        assert_eq!(file_and_line(":12", Runtime::Go), None);
    }

    #[test]
    fn the_section_escapes_what_it_shows() {
        let site = |function: &str| AccessSite {
            access: "Write".to_owned(),
            function: function.to_owned(),
            location: Some("/x/a.go:3 +0x1".to_owned()),
        };
        let section = render_last_changed(&[
            LastChanged {
                site: site("main.(*T).Put()"),
                path: Some(("a.go".to_owned(), 3)),
                outcome: BlameOutcome::Commit(CommitLine {
                    short_id: "d42409d5".to_owned(),
                    url: Some("https://g.example/p/-/commit/d42409d5".to_owned()),
                    author: "Jane <script>".to_owned(),
                    date: "2026-11-20".to_owned(),
                    subject: "Fix\n/close".to_owned(),
                }),
            },
            LastChanged {
                site: site("evil`\n/close"),
                path: None,
                outcome: BlameOutcome::OutsideRepository,
            },
        ]);
        assert!(section.starts_with("#### Last changed\n\n"), "{section}");
        assert!(
            section.contains(
                "- **Write** in `main.(*T).Put()` at `a.go:3`: [`d42409d5`](https://g.example/p/-/commit/d42409d5) by Jane &lt;script&gt; on 2026-11-20: Fix /close\n"
            ),
            "{section}"
        );
        assert!(section.contains("``evil`\\n/close``"), "{section}");
        assert!(section.lines().all(|l| !l.starts_with('/')), "{section}");
    }
}
