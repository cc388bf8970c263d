//! `rp-devops scan-races`: race-detector reports in logs → one GitLab issue
//! per distinct race, a note when it shows up again (SPEC §4).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use flate2::read::MultiGzDecoder;
use serde::Serialize;

use crate::error::{ExitStatus, UsageError};
use crate::gitlab::{GitLab, Issue, NewIssue};
use crate::output::{Printer, Progress};
use crate::races::{self, Fingerprint, RaceReport};
use crate::settings::Settings;

/// Turn Go race-detector and ThreadSanitizer reports in logs into GitLab
/// issues: one issue per distinct race, a note on it when it shows up again.
///
/// Reads plain or gzipped files, whole directories, or `-` for stdin.
/// Existing race issues are found by their label (one paginated listing),
/// so re-running on the same logs never creates a second issue.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops scan-races /var/log/restorepoint/ --dry-run\n  \
    journalctl -u restorepoint --since yesterday | rp-devops scan-races --host testbox-07 -\n  \
    rp-devops scan-races --json --fail-on-race build/test-output.log")]
pub struct ScanRacesArgs {
    /// Log files, directories (every regular file below) or - for stdin; .gz is read transparently
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Label for race issues, repeatable [default: races.labels, else "race condition"]
    #[arg(long = "label", value_name = "L")]
    pub labels: Vec<String>,

    /// Host name reported as the logs' origin [default: this machine's]
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Comment on a closed issue whose race shows up again, but leave it closed
    #[arg(long)]
    pub no_reopen: bool,

    /// Exit with code 3 when any race report was found
    #[arg(long)]
    pub fail_on_race: bool,
}

const DEFAULT_LABEL: &str = "race condition";
/// Reports longer than this are cut in issue bodies (GitLab's limit is 1 MB).
const BODY_REPORT_LIMIT: usize = 256 * 1024;
/// Show a progress bar or lines only for inputs at least this large.
const PROGRESS_THRESHOLD: u64 = 64 * 1024 * 1024;

/// Everything this run saw of one race.
struct RaceSighting {
    /// Position of the first sighting in the whole run, to list races in the
    /// order a person reading the logs would meet them.
    order: u64,
    title: String,
    /// The fingerprint of each usable side alone (see [`RaceMarker`]).
    sides: Vec<Fingerprint>,
    first: RaceReport,
    first_source: String,
    newest: RaceReport,
    newest_source: String,
    count: u64,
    sources: BTreeSet<String>,
}

#[derive(Debug, Serialize)]
struct ScanResult {
    files: u64,
    bytes: u64,
    reports: u64,
    truncated: u64,
    races: Vec<RaceResult>,
}

#[derive(Debug, Serialize)]
struct RaceResult {
    fingerprint: String,
    title: String,
    count: u64,
    sources: Vec<String>,
    action: &'static str,
    issue: Option<IssueRef>,
}

#[derive(Debug, Serialize)]
struct IssueRef {
    iid: u64,
    web_url: String,
}

impl From<&Issue> for IssueRef {
    fn from(issue: &Issue) -> Self {
        Self {
            iid: issue.iid,
            web_url: issue.web_url.clone(),
        }
    }
}

pub fn run(args: &ScanRacesArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let host = args.host.clone().unwrap_or_else(|| settings.hostname());
    let labels = race_labels(args, settings)?;
    let reopen = !args.no_reopen && settings.config.races.reopen_closed.unwrap_or(true);

    let inputs = expand_inputs(&args.paths)?;
    let mut scan = Scan::default();
    let total: u64 = inputs.iter().filter_map(|i| i.size).sum();
    let progress = if total >= PROGRESS_THRESHOLD {
        printer.progress(total, "scanning logs")
    } else {
        Progress::hidden()
    };
    for input in &inputs {
        if let Err(err) = scan.read(input, &host, &progress) {
            printer.warn(format!("{err:#}"));
            scan.unreadable.push(format!("{}: {err:#}", input.display));
        }
    }
    progress.finish();

    let mut result = ScanResult {
        files: scan.files,
        bytes: scan.bytes,
        reports: scan.reports,
        truncated: scan.truncated,
        races: Vec::new(),
    };

    if !scan.races.is_empty() {
        merge_one_sided(&mut scan.races);
        let mut sightings: Vec<(Fingerprint, RaceSighting)> = scan.races.into_iter().collect();
        sightings.sort_by_key(|(_, s)| s.order);
        result.races = file_races(settings, &printer, &sightings, &labels, reopen)?;
    }

    printer.result(&result, |out| render_human(out, &result))?;

    if !scan.unreadable.is_empty() {
        anyhow::bail!(
            "could not read {} of {} inputs:\n  {}",
            scan.unreadable.len(),
            scan.unreadable.len() as u64 + scan.files,
            scan.unreadable.join("\n  ")
        );
    }
    if args.fail_on_race && result.reports > 0 {
        return Ok(ExitStatus::Found);
    }
    Ok(ExitStatus::Success)
}

fn race_labels(args: &ScanRacesArgs, settings: &Settings) -> Result<Vec<String>> {
    let labels: Vec<String> = if !args.labels.is_empty() {
        args.labels.clone()
    } else {
        settings
            .config
            .races
            .labels
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_LABEL.to_owned()])
    };
    let labels: Vec<String> = labels.into_iter().map(|l| l.trim().to_owned()).collect();
    if labels.is_empty() || labels.iter().any(|l| l.is_empty() || l.contains(',')) {
        return Err(UsageError::new(format!(
            "race labels must be non-empty and contain no comma, got {labels:?}"
        ))
        .into());
    }
    Ok(labels)
}

/// Where reports come from.
struct Input {
    path: Option<PathBuf>,
    display: String,
    size: Option<u64>,
}

/// Files as given, directories expanded to every regular file below them
/// (sorted, so runs are reproducible), `-` for stdin.
fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input {
                path: None,
                display: "stdin".to_owned(),
                size: None,
            });
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut inputs)?,
            Ok(meta) => inputs.push(Input {
                path: Some(path.clone()),
                display: path.display().to_string(),
                size: Some(meta.len()),
            }),
            // Named but missing or unreadable: reading it reports the error,
            // and the other inputs are still processed.
            Err(_) => inputs.push(Input {
                path: Some(path.clone()),
                display: path.display().to_string(),
                size: None,
            }),
        }
    }
    Ok(inputs)
}

fn walk(dir: &Path, inputs: &mut Vec<Input>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list directory {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list directory {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, inputs)?;
        } else if meta.is_file() {
            inputs.push(Input {
                display: path.display().to_string(),
                size: Some(meta.len()),
                path: Some(path),
            });
        }
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    files: u64,
    bytes: u64,
    reports: u64,
    truncated: u64,
    order: u64,
    races: BTreeMap<Fingerprint, RaceSighting>,
    unreadable: Vec<String>,
}

impl Scan {
    fn read(&mut self, input: &Input, host: &str, progress: &Progress) -> Result<()> {
        let raw: Box<dyn Read> = match &input.path {
            Some(path) => Box::new(
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            ),
            None => Box::new(std::io::stdin().lock()),
        };
        let counted = CountingReader {
            inner: raw,
            progress,
        };
        let mut buffered = BufReader::with_capacity(256 * 1024, counted);
        let gzipped = buffered
            .fill_buf()
            .with_context(|| format!("cannot read {}", input.display))?
            .starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read + '_> = if gzipped {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };

        let source = format!("{host}:{}", input.display);
        let races = &mut self.races;
        let order = &mut self.order;
        let stats = races::scan(reader, &mut |_| {}, &mut |report: RaceReport| {
            *order += 1;
            let fingerprint = report.fingerprint();
            match races.get_mut(&fingerprint) {
                Some(seen) => {
                    seen.count += 1;
                    seen.sources.insert(source.clone());
                    seen.newest = report;
                    seen.newest_source = source.clone();
                }
                None => {
                    races.insert(
                        fingerprint,
                        RaceSighting {
                            order: *order,
                            title: report.title(),
                            sides: report.side_fingerprints(),
                            first: report.clone(),
                            first_source: source.clone(),
                            newest: report,
                            newest_source: source.clone(),
                            count: 1,
                            sources: BTreeSet::from([source.clone()]),
                        },
                    );
                }
            }
        })
        .with_context(|| format!("cannot read {}", input.display))?;
        self.files += 1;
        self.bytes += stats.bytes;
        self.reports += stats.reports;
        self.truncated += stats.truncated;
        Ok(())
    }
}

struct CountingReader<'a> {
    inner: Box<dyn Read>,
    progress: &'a Progress,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// The marker that identifies a race's issue:
/// `<!-- rp-devops:race fingerprint=HEX sides=HEX,HEX -->`. `sides` holds the
/// fingerprint each access would have alone, so that a report cut off after
/// one side finds the issue of the full race, and the other way round.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RaceMarker {
    fingerprint: String,
    sides: Vec<String>,
}

const MARKER_START: &str = "<!-- rp-devops:race fingerprint=";

impl RaceMarker {
    fn new(fingerprint: &Fingerprint, sides: &[Fingerprint]) -> Self {
        Self {
            fingerprint: fingerprint.0.clone(),
            sides: sides.iter().map(|s| s.0.clone()).collect(),
        }
    }

    fn render(&self) -> String {
        format!(
            "{MARKER_START}{} sides={} -->",
            self.fingerprint,
            self.sides.join(",")
        )
    }

    /// The marker in an issue description, if it has one.
    fn find(description: &str) -> Option<(Self, std::ops::Range<usize>)> {
        let start = description.find(MARKER_START)?;
        let end = start + description[start..].find("-->")? + "-->".len();
        let inner = &description[start + MARKER_START.len()..end - "-->".len()];
        let mut words = inner.split_whitespace();
        let fingerprint = words.next().filter(|f| is_hex(f))?.to_owned();
        let sides = words
            .find_map(|w| w.strip_prefix("sides="))
            .map(|list| {
                list.split(',')
                    .filter(|s| is_hex(s))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some((Self { fingerprint, sides }, start..end))
    }

    /// A report with one usable side: its fingerprint is that side's.
    fn is_one_sided(&self) -> bool {
        self.sides.len() == 1 && self.sides[0] == self.fingerprint
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How an existing issue's description must change to carry our marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkerUpdate {
    /// It has our marker already.
    None,
    /// Made by hand or by the old tool: append the marker (adoption).
    Append,
    /// Filed from a one-sided report; now the full race is known.
    Replace,
}

/// The existing issue of a race: by fingerprint; else, for a one-sided
/// report, the one issue of a full race with that side (or, for a full race,
/// the one issue filed from a one-sided report of either side); else an
/// issue with the same title and no marker.
fn find_issue<'a>(
    existing: &'a [Issue],
    ours: &RaceMarker,
    title: &str,
) -> Option<(&'a Issue, MarkerUpdate)> {
    // Two runs at once may have filed a race twice; the earliest issue is
    // the race's, the later one was closed as its duplicate.
    let mut marked: Vec<(&Issue, RaceMarker)> = existing
        .iter()
        .filter_map(|i| RaceMarker::find(i.description()).map(|(m, _)| (i, m)))
        .collect();
    marked.sort_by_key(|(i, _)| i.iid);
    let mut seen = std::collections::HashSet::new();
    marked.retain(|(_, m)| seen.insert(m.fingerprint.clone()));
    if let Some((issue, _)) = marked
        .iter()
        .find(|(_, m)| m.fingerprint == ours.fingerprint)
    {
        return Some((issue, MarkerUpdate::None));
    }
    let related: Vec<&(&Issue, RaceMarker)> = if ours.is_one_sided() {
        marked
            .iter()
            .filter(|(_, m)| !m.is_one_sided() && m.sides.contains(&ours.fingerprint))
            .collect()
    } else {
        marked
            .iter()
            .filter(|(_, m)| m.is_one_sided() && ours.sides.contains(&m.fingerprint))
            .collect()
    };
    if let [(issue, _)] = related.as_slice() {
        let update = if ours.is_one_sided() {
            MarkerUpdate::None
        } else {
            MarkerUpdate::Replace
        };
        return Some((issue, update));
    }
    existing
        .iter()
        .find(|i| RaceMarker::find(i.description()).is_none() && i.title == title)
        .map(|i| (i, MarkerUpdate::Append))
}

/// Within one run, a one-sided report (cut off in the log) counts towards the
/// full race with that side, when exactly one such race was seen.
fn merge_one_sided(races: &mut BTreeMap<Fingerprint, RaceSighting>) {
    let one_sided: Vec<Fingerprint> = races
        .iter()
        .filter(|(fp, s)| s.sides.len() == 1 && s.sides[0] == **fp)
        .map(|(fp, _)| fp.clone())
        .collect();
    for side in one_sided {
        let full: Vec<Fingerprint> = races
            .iter()
            .filter(|(fp, s)| **fp != side && s.sides.len() == 2 && s.sides.contains(&side))
            .map(|(fp, _)| fp.clone())
            .collect();
        let [target] = full.as_slice() else { continue };
        let (Some(part), Some(whole)) = (races.remove(&side), races.get_mut(target)) else {
            continue;
        };
        whole.count += part.count;
        whole.sources.extend(part.sources);
        whole.order = whole.order.min(part.order);
    }
}

/// Create, comment on or reopen the issue of each race.
fn file_races(
    settings: &Settings,
    printer: &Printer,
    sightings: &[(Fingerprint, RaceSighting)],
    labels: &[String],
    reopen: bool,
) -> Result<Vec<RaceResult>> {
    let project = settings
        .gitlab
        .project_for(settings.config.races.project.as_deref());
    let offline = settings.dry_run && settings.gitlab.url.is_none();
    if offline {
        printer.info(
            "dry-run without a GitLab URL: nothing is read from GitLab; every race is shown as new",
        );
    }
    let client = if offline {
        None
    } else {
        let warn = printer.clone();
        Some(GitLab::new(&settings.gitlab, settings.retry)?.on_retry(move |m| warn.warn(m)))
    };
    let project = match (&client, project) {
        (None, project) => project.unwrap_or_default(),
        (Some(_), Some(project)) => project,
        (Some(_), None) => {
            return Err(UsageError::new(
                "no GitLab project for race issues: set --project, RP_PROJECT, races.project or gitlab.project",
            )
            .into());
        }
    };

    let existing = match &client {
        Some(client) => client
            .issues_with_labels(&project, &labels[..1])
            .with_context(|| format!("listing race issues of project {project}"))?,
        None => Vec::new(),
    };
    let run_id = format!("{:016x}", fastrand::u64(..));

    let mut results = Vec::new();
    // Issues this run created: (index in `results`, iid, fingerprint).
    let mut created: Vec<(usize, u64, &Fingerprint)> = Vec::new();
    for (fingerprint, sighting) in sightings {
        let ours = RaceMarker::new(fingerprint, &sighting.sides);
        let marker = ours.render();
        let matched = find_issue(&existing, &ours, &sighting.title);
        let found = matched.map(|(issue, _)| issue);
        let mut race = RaceResult {
            fingerprint: fingerprint.0.clone(),
            title: sighting.title.clone(),
            count: sighting.count,
            sources: sighting.sources.iter().cloned().collect(),
            action: "",
            issue: found.map(IssueRef::from),
        };
        match (found, &client) {
            (None, client) => {
                let new = NewIssue {
                    title: sighting.title.clone(),
                    description: issue_body(sighting, &marker),
                    labels: labels.to_vec(),
                };
                match client.as_ref().filter(|_| !settings.dry_run) {
                    None => {
                        printer.would(
                            "POST",
                            &format!("{}/issues", shown_project_path(&project)),
                            format!("new issue {:?} labelled {:?}", new.title, labels.join(",")),
                        );
                        race.action = "would-create";
                    }
                    Some(client) => {
                        let issue =
                            sent(client.create_issue(&project, &new, &marker).with_context(
                                || format!("creating the issue for {:?}", sighting.title),
                            )?)?;
                        printer.detail(format!("created #{} {}", issue.iid, issue.web_url));
                        race.issue = Some(IssueRef::from(&issue));
                        race.action = "created";
                        created.push((results.len(), issue.iid, fingerprint));
                    }
                }
            }
            (Some(issue), Some(client)) => {
                let update = matched.map_or(MarkerUpdate::None, |(_, u)| u);
                let reopening = reopen && issue.is_closed();
                let note_marker =
                    format!("<!-- rp-devops:race-note fingerprint={fingerprint} run={run_id} -->");
                let note = note_body(sighting, &note_marker, reopening);
                let issue_path = format!("{}/issues/{}", GitLab::project_path(&project), issue.iid);
                if settings.dry_run {
                    if update != MarkerUpdate::None {
                        printer.would(
                            "PUT",
                            &issue_path,
                            "put the rp-devops race marker in the description",
                        );
                    }
                    if reopening {
                        printer.would("PUT", &issue_path, "state_event=reopen");
                    }
                    printer.would(
                        "POST",
                        &format!("{issue_path}/notes"),
                        format!("note: seen {} more times", sighting.count),
                    );
                    race.action = if reopening {
                        "would-reopen"
                    } else {
                        "would-comment"
                    };
                } else {
                    if let Some(description) =
                        marked_description(issue.description(), update, &marker)
                    {
                        client
                            .update_issue_description(&project, issue.iid, &description)
                            .with_context(|| format!("adopting issue #{}", issue.iid))?;
                    }
                    if reopening {
                        client
                            .reopen_issue(&project, issue.iid)
                            .with_context(|| format!("reopening issue #{}", issue.iid))?;
                    }
                    client
                        .create_issue_note(&project, issue.iid, &note, &note_marker)
                        .with_context(|| format!("adding a note to issue #{}", issue.iid))?;
                    race.action = if reopening { "reopened" } else { "commented" };
                }
            }
            (Some(_), None) => unreachable!("issues are only found through a client"),
        }
        results.push(race);
    }
    if let (Some(client), false) = (&client, created.is_empty()) {
        let by_fingerprint: BTreeMap<&Fingerprint, &RaceSighting> =
            sightings.iter().map(|(fp, s)| (fp, s)).collect();
        let ctx = FilingContext {
            client,
            project: &project,
            labels,
            run_id: &run_id,
        };
        resolve_concurrent_creations(&ctx, &created, &by_fingerprint, &mut results)?;
    }
    Ok(results)
}

struct FilingContext<'a> {
    client: &'a GitLab,
    project: &'a str,
    labels: &'a [String],
    run_id: &'a str,
}

/// Two runs at once (cron on several test machines fires at the same minute)
/// can both find no issue for a race and both create one. After creating,
/// list once more: if an earlier issue carries the same fingerprint, ours is
/// the duplicate: close it, pointing at the earlier one, and note this run's
/// sighting there. Whichever run created later sees the earlier issue, so
/// exactly one issue per race stays open.
fn resolve_concurrent_creations(
    ctx: &FilingContext<'_>,
    created: &[(usize, u64, &Fingerprint)],
    sightings: &BTreeMap<&Fingerprint, &RaceSighting>,
    results: &mut [RaceResult],
) -> Result<()> {
    let after = ctx
        .client
        .issues_with_labels(ctx.project, &ctx.labels[..1])
        .with_context(|| format!("listing race issues of project {} again", ctx.project))?;
    for &(index, ours, fingerprint) in created {
        let earliest = after
            .iter()
            .filter(|i| {
                RaceMarker::find(i.description())
                    .is_some_and(|(m, _)| m.fingerprint == fingerprint.0)
            })
            .min_by_key(|i| i.iid);
        let Some(original) = earliest.filter(|i| i.iid < ours) else {
            continue;
        };
        let duplicate_marker = format!("<!-- rp-devops:race-duplicate of={} -->", original.iid);
        let body = format!(
            "Duplicate of #{}: another scan-races run filed this race at the same time.\n\n{duplicate_marker}\n",
            original.iid
        );
        ctx.client
            .create_issue_note(ctx.project, ours, &body, &duplicate_marker)
            .with_context(|| {
                format!("marking issue #{ours} as a duplicate of #{}", original.iid)
            })?;
        ctx.client
            .close_issue(ctx.project, ours)
            .with_context(|| format!("closing duplicate issue #{ours}"))?;
        if let Some(sighting) = sightings.get(fingerprint) {
            let note_marker = format!(
                "<!-- rp-devops:race-note fingerprint={fingerprint} run={} -->",
                ctx.run_id
            );
            ctx.client
                .create_issue_note(
                    ctx.project,
                    original.iid,
                    &note_body(sighting, &note_marker, false),
                    &note_marker,
                )
                .with_context(|| format!("adding a note to issue #{}", original.iid))?;
        }
        results[index].action = "commented";
        results[index].issue = Some(IssueRef::from(original));
    }
    Ok(())
}

/// GitLab's answer to a write this command made for real (it branches on
/// dry-run itself, so a planned write here is a bug).
fn sent<T>(written: crate::gitlab::Written<T>) -> Result<T> {
    written
        .sent()
        .ok_or_else(|| anyhow::anyhow!("internal error: a write was planned, not sent"))
}

/// The description with our marker put in, or `None` when it has it already.
fn marked_description(description: &str, update: MarkerUpdate, marker: &str) -> Option<String> {
    match update {
        MarkerUpdate::None => None,
        MarkerUpdate::Append => Some(format!("{}\n\n{marker}\n", description.trim_end())),
        MarkerUpdate::Replace => {
            let (_, range) = RaceMarker::find(description)?;
            let mut updated = description.to_owned();
            updated.replace_range(range, marker);
            Some(updated)
        }
    }
}

/// The project part of a path in dry-run lines; `:id` when no project is
/// configured (an offline dry run).
fn shown_project_path(project: &str) -> String {
    if project.is_empty() {
        "projects/:id".to_owned()
    } else {
        GitLab::project_path(project)
    }
}

/// A fence longer than any run of backticks inside `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

fn fenced(text: &str) -> String {
    let (text, cut) = if text.len() > BODY_REPORT_LIMIT {
        let mut end = BODY_REPORT_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (&text[..end], true)
    } else {
        (text, false)
    };
    let fence = fence_for(text);
    let mut out = format!("{fence}text\n{text}\n{fence}\n");
    if cut {
        out.push_str(&format!(
            "\n_(report cut at {} KiB)_\n",
            BODY_REPORT_LIMIT / 1024
        ));
    }
    out
}

fn source_list(sighting: &RaceSighting) -> String {
    const SHOWN: usize = 20;
    let mut list: Vec<String> = sighting
        .sources
        .iter()
        .take(SHOWN)
        .map(|s| format!("- `{s}`"))
        .collect();
    if sighting.sources.len() > SHOWN {
        list.push(format!("- … and {} more", sighting.sources.len() - SHOWN));
    }
    list.join("\n")
}

fn issue_body(sighting: &RaceSighting, marker: &str) -> String {
    let truncated = if sighting.first.truncated {
        "\n\nThe report below was cut off in the log (truncated)."
    } else {
        ""
    };
    format!(
        "The race detector reported this data race in `{}`.\n\n\
         Seen **{}** time{} in this run, in:\n\n{}{truncated}\n\n{}\n{marker}\n",
        sighting.first_source,
        sighting.count,
        if sighting.count == 1 { "" } else { "s" },
        source_list(sighting),
        fenced(&sighting.first.text),
    )
}

fn note_body(sighting: &RaceSighting, marker: &str, reopening: bool) -> String {
    let regression = if reopening {
        "**Regression:** this race was fixed (the issue was closed) and shows up again; reopening.\n\n"
    } else {
        ""
    };
    format!(
        "{regression}Seen again: **{}** time{} in this run, in:\n\n{}\n\n\
         <details><summary>Newest report (from <code>{}</code>)</summary>\n\n{}\n</details>\n\n{marker}\n",
        sighting.count,
        if sighting.count == 1 { "" } else { "s" },
        source_list(sighting),
        sighting.newest_source.replace('<', "&lt;"),
        fenced(&sighting.newest.text),
    )
}

fn render_human(out: &mut dyn std::io::Write, result: &ScanResult) -> std::io::Result<()> {
    if result.reports == 0 {
        return writeln!(
            out,
            "no race reports in {} file{} ({})",
            result.files,
            if result.files == 1 { "" } else { "s" },
            bytesize::ByteSize(result.bytes)
        );
    }
    for race in &result.races {
        let issue = race
            .issue
            .as_ref()
            .map(|i| format!("#{} {}", i.iid, i.web_url))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<13} {} ({}×) {issue}",
            race.action, race.title, race.count
        )?;
    }
    writeln!(
        out,
        "{} race report{} ({} truncated) in {} file{} ({}): {} distinct race{}",
        result.reports,
        if result.reports == 1 { "" } else { "s" },
        result.truncated,
        result.files,
        if result.files == 1 { "" } else { "s" },
        bytesize::ByteSize(result.bytes),
        result.races.len(),
        if result.races.len() == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_backticks_in_the_report() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }

    fn fp(hex: &str) -> Fingerprint {
        Fingerprint(hex.to_owned())
    }

    #[test]
    fn markers_round_trip() {
        let marker = RaceMarker::new(&fp("0123abcd"), &[fp("aa"), fp("bb")]);
        let body = format!("text\n{}\nmore", marker.render());
        let (found, range) = RaceMarker::find(&body).unwrap();
        assert_eq!(found, marker);
        assert_eq!(&body[range], marker.render());
        assert!(RaceMarker::find("no marker").is_none());
        // Issues filed before sides were recorded still match by fingerprint.
        let (old, _) = RaceMarker::find("<!-- rp-devops:race fingerprint=beef -->").unwrap();
        assert_eq!(old.fingerprint, "beef");
        assert!(old.sides.is_empty());
    }

    #[test]
    fn replacing_a_one_sided_marker_keeps_the_rest() {
        let old = RaceMarker::new(&fp("aa"), &[fp("aa")]).render();
        let new = RaceMarker::new(&fp("cc"), &[fp("aa"), fp("bb")]).render();
        let description = format!("report\n\n{old}\n");
        let updated = marked_description(&description, MarkerUpdate::Replace, &new).unwrap();
        assert_eq!(updated, format!("report\n\n{new}\n"));
        assert_eq!(
            marked_description(&description, MarkerUpdate::None, &new),
            None
        );
    }
}
