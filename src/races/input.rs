//! Where reports come from and what a run saw of each race: paths expanded
//! to files (directories walked, `-` for stdin), gzip recognised by its magic
//! bytes, and every report folded into one [`RaceSighting`] per fingerprint.
//!
//! Reads files, never the network; prints nothing (progress goes to a
//! callback, unreadable inputs come back as errors for the caller to report).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use md5::{Digest, Md5};

use super::{Fingerprint, RaceReport, Runtime};

/// One input: a file, or stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// `None` for stdin.
    pub path: Option<PathBuf>,
    /// How the input is named in sources and errors: the path as given, or `stdin`.
    pub display: String,
    /// Its size when known (for progress); `None` for stdin or a file that
    /// could not be looked at.
    pub size: Option<u64>,
}

/// Files as given, directories expanded to every regular file below them
/// (sorted, so runs are reproducible), `-` for stdin. A path that cannot be
/// looked at is kept: reading it reports the error, and the other inputs are
/// still read.
///
/// Symbolic links are followed, but a directory or a file already met (by
/// device and inode) is never entered or listed again: a link loop is walked
/// once, and a `current.log` link next to the log it names is read once.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    let mut seen = Seen::default();
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
            Ok(meta) if meta.is_dir() => {
                if seen.first_time(&meta) {
                    walk(path, &mut inputs, &mut seen)?;
                }
            }
            Ok(meta) => {
                if seen.first_time(&meta) {
                    inputs.push(Input {
                        path: Some(path.clone()),
                        display: path.display().to_string(),
                        size: Some(meta.len()),
                    });
                }
            }
            Err(_) => inputs.push(Input {
                path: Some(path.clone()),
                display: path.display().to_string(),
                size: None,
            }),
        }
    }
    Ok(inputs)
}

/// Directories and files met so far, by (device, inode).
#[derive(Default)]
struct Seen(HashSet<(u64, u64)>);

impl Seen {
    fn first_time(&mut self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.0.insert((meta.dev(), meta.ino()))
    }
}

fn walk(dir: &Path, inputs: &mut Vec<Input>, seen: &mut Seen) -> Result<()> {
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
        if !(meta.is_dir() || meta.is_file()) || !seen.first_time(&meta) {
            continue;
        }
        if meta.is_dir() {
            walk(&path, inputs, seen)?;
        } else {
            inputs.push(Input {
                display: path.display().to_string(),
                size: Some(meta.len()),
                path: Some(path),
            });
        }
    }
    Ok(())
}

/// Each report text a run keeps (a race's first and newest) is cut here.
pub const KEPT_REPORT_CAP: usize = 64 * 1024;
/// Report texts kept by one run, all races together. Past this, a race's
/// counts, sources and fingerprints are still kept, its text is not (the
/// issue or note says so).
pub const KEPT_TEXT_BUDGET: usize = 4 * 1024 * 1024;
/// Sources listed per race; more are counted.
pub const KEPT_SOURCES: usize = 100;
/// Sighting ids kept per race: the first ones and the newest ones.
const KEPT_FIRST_IDS: usize = 64;
const KEPT_NEWEST_IDS: usize = 960;
/// Longest function name or location kept for a race's top frames.
const KEPT_FRAME_CHARS: usize = 1024;

/// Where reports come from: the host and the input's name, and how sources
/// are shown (`host:input`).
#[derive(Debug, Clone)]
pub struct Source {
    host: String,
    path: String,
    label: Arc<str>,
}

impl Source {
    pub fn new(host: &str, path: &str) -> Self {
        Self {
            host: host.to_owned(),
            path: path.to_owned(),
            label: Arc::from(format!("{host}:{path}")),
        }
    }

    /// `host:input`.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// The id of the report at `offset` in this source whose raw lines
    /// hash to `raw_digest` (SPEC §4: host, source path, offset, raw text).
    fn sighting_id(&self, offset: u64, raw_digest: &[u8; 16]) -> SightingId {
        let mut hash = Md5::new();
        for part in [self.host.as_bytes(), self.path.as_bytes()] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        hash.update(offset.to_le_bytes());
        hash.update(raw_digest);
        let digest = hash.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        SightingId(u64::from_be_bytes(id))
    }
}

/// One occurrence of a race in one source: a hash of the host, the source
/// path, the report's offset in it and its raw text. Reading the same log
/// again gives the same ids; the race recurring (further down a growing log,
/// in a new log, on another host, or with other timestamps) gives new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SightingId(pub u64);

impl std::fmt::Display for SightingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for SightingId {
    type Err = std::num::ParseIntError;

    fn from_str(hex: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(hex, 16).map(SightingId)
    }
}

/// The sightings of one race in one run, bounded: the first ones and the
/// newest ones are kept, the others only counted.
#[derive(Debug, Clone, Default)]
pub struct Sightings {
    first: Vec<SightingId>,
    newest: VecDeque<SightingId>,
    total: u64,
}

impl Sightings {
    fn push(&mut self, id: SightingId) {
        self.total += 1;
        if self.first.len() < KEPT_FIRST_IDS {
            self.first.push(id);
            return;
        }
        if self.newest.len() == KEPT_NEWEST_IDS {
            self.newest.pop_front();
        }
        self.newest.push_back(id);
    }

    fn extend(&mut self, other: Sightings) {
        let total = self.total + other.total;
        for id in other.iter() {
            self.push(id);
        }
        self.total = total;
    }

    /// The kept ids, first ones first.
    pub fn iter(&self) -> impl Iterator<Item = SightingId> + '_ {
        self.first.iter().chain(self.newest.iter()).copied()
    }

    /// How many sightings there were, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many were counted but not kept.
    pub fn not_kept(&self) -> u64 {
        self.total - (self.first.len() + self.newest.len()) as u64
    }
}

/// A report's text as a run keeps it.
#[derive(Debug, Clone)]
pub struct KeptReport {
    /// The text, cut at [`KEPT_REPORT_CAP`]; `None` when the run had kept
    /// [`KEPT_TEXT_BUDGET`] of report texts already.
    pub text: Option<String>,
    /// The text was cut at [`KEPT_REPORT_CAP`].
    pub cut: bool,
    /// The report itself was cut off in the log.
    pub truncated: bool,
    /// `host:input` it came from.
    pub source: Arc<str>,
}

impl KeptReport {
    fn size(&self) -> usize {
        self.text.as_ref().map_or(0, String::len)
    }
}

/// The frame that identifies one side of a race, for telling who last
/// changed its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSite {
    /// `Write`, `Previous read`, `Read of size 8`…
    pub access: String,
    /// The function as printed.
    pub function: String,
    /// Its location as printed (`/src/x.go:12 +0x1f`, `x.cc:12:5`), if any.
    pub location: Option<String>,
}

/// Everything one run saw of one race, in bounded memory: two report texts
/// of at most [`KEPT_REPORT_CAP`] (within the run's [`KEPT_TEXT_BUDGET`]),
/// at most [`KEPT_SOURCES`] sources and a bounded list of sighting ids.
#[derive(Debug, Clone)]
pub struct RaceSighting {
    pub fingerprint: Fingerprint,
    /// Position of the first sighting in the whole run, to list races in the
    /// order a person reading the logs would meet them.
    pub order: u64,
    pub title: String,
    /// The fingerprint of each usable side alone (see
    /// [`RaceMarker`](super::issue::RaceMarker)).
    pub sides: Vec<Fingerprint>,
    pub runtime: Runtime,
    /// The top frame of each access of the first report.
    pub sites: Vec<AccessSite>,
    pub first: KeptReport,
    /// `None` while the race was seen once (the newest is the first).
    newest: Option<KeptReport>,
    pub count: u64,
    /// The `host:input`s the race was seen in, at most [`KEPT_SOURCES`].
    pub sources: BTreeSet<Arc<str>>,
    /// Further sources, counted but not listed.
    pub more_sources: u64,
    /// The last source counted in `more_sources`: a run reads one input at a
    /// time, so this counts an unlisted source once per stretch of reading
    /// it, without keeping them (a file named twice, or merged one-sided
    /// races, may count twice).
    last_unlisted: Option<Arc<str>>,
    pub sightings: Sightings,
}

impl RaceSighting {
    /// The newest report of the race in this run.
    pub fn newest(&self) -> &KeptReport {
        self.newest.as_ref().unwrap_or(&self.first)
    }

    /// A race known from a report with one usable side: its fingerprint is
    /// that side's.
    pub fn is_one_sided(&self) -> bool {
        self.sides.len() == 1 && self.sides[0] == self.fingerprint
    }

    fn add_source(&mut self, source: &Arc<str>) {
        if self.sources.contains(source) {
            return;
        }
        if self.sources.len() < KEPT_SOURCES {
            self.sources.insert(source.clone());
        } else if self.last_unlisted.as_ref() != Some(source) {
            self.more_sources += 1;
            self.last_unlisted = Some(source.clone());
        }
    }
}

/// The reports of a run, folded per fingerprint, with totals.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: u64,
    pub bytes: u64,
    pub reports: u64,
    pub truncated: u64,
    /// Report texts not kept because of [`KEPT_TEXT_BUDGET`].
    pub texts_dropped: u64,
    order: u64,
    /// Bytes of report text kept, all races together.
    kept_text: usize,
    races: BTreeMap<Fingerprint, RaceSighting>,
}

impl Scan {
    /// Read one input to its end (gunzipping it when it starts with gzip's
    /// magic bytes), calling `progress` with the number of raw bytes of each
    /// read. Sources are named `host:input`.
    pub fn read(&mut self, input: &Input, host: &str, progress: &dyn Fn(u64)) -> Result<()> {
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

        let source = Source::new(host, &input.display);
        let stats = super::scan(reader, &mut |_| {}, &mut |report| {
            self.add(report, &source);
        })
        .with_context(|| format!("cannot read {}", input.display))?;
        self.files += 1;
        self.bytes += stats.bytes;
        self.reports += stats.reports;
        self.truncated += stats.truncated;
        Ok(())
    }

    /// Count one report towards its race, keeping what the issue or note
    /// needs of it and dropping the rest.
    pub fn add(&mut self, report: RaceReport, source: &Source) {
        self.order += 1;
        let id = source.sighting_id(report.offset, &report.raw_digest);
        let fingerprint = report.fingerprint();
        let order = self.order;
        if !self.races.contains_key(&fingerprint) {
            let first = self.keep(&report, source);
            let mut sightings = Sightings::default();
            sightings.push(id);
            let sighting = RaceSighting {
                fingerprint: fingerprint.clone(),
                order,
                title: report.title(),
                sides: report.side_fingerprints(),
                runtime: report.runtime,
                sites: sites(&report),
                first,
                newest: None,
                count: 1,
                sources: BTreeSet::from([source.label().clone()]),
                more_sources: 0,
                last_unlisted: None,
                sightings,
            };
            self.races.insert(fingerprint, sighting);
            return;
        }
        // The newest report replaces the one kept before, within the budget.
        let released = self
            .races
            .get_mut(&fingerprint)
            .and_then(|seen| seen.newest.take())
            .map_or(0, |old| old.size());
        self.kept_text -= released;
        let newest = self.keep(&report, source);
        if let Some(seen) = self.races.get_mut(&fingerprint) {
            seen.count += 1;
            seen.add_source(source.label());
            seen.sightings.push(id);
            seen.newest = Some(newest);
        }
    }

    /// The report's text as kept: cut at [`KEPT_REPORT_CAP`], or dropped
    /// once the run keeps [`KEPT_TEXT_BUDGET`] of texts.
    fn keep(&mut self, report: &RaceReport, source: &Source) -> KeptReport {
        let (text, cut) = cut_at(&report.text, KEPT_REPORT_CAP);
        let text = if self.kept_text + text.len() <= KEPT_TEXT_BUDGET {
            self.kept_text += text.len();
            Some(text.to_owned())
        } else {
            self.texts_dropped += 1;
            None
        };
        KeptReport {
            text,
            cut,
            truncated: report.truncated,
            source: source.label().clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.races.is_empty()
    }

    /// One sighting per race, cut-off reports counted towards their full
    /// race (see [`merge_one_sided`]), in the order the logs show them.
    pub fn into_sightings(mut self) -> Vec<RaceSighting> {
        merge_one_sided(&mut self.races);
        let mut sightings: Vec<RaceSighting> = self.races.into_values().collect();
        sightings.sort_by_key(|s| s.order);
        sightings
    }
}

/// `text` cut at `cap` bytes (on a character boundary), and whether it was.
fn cut_at(text: &str, cap: usize) -> (&str, bool) {
    if text.len() <= cap {
        return (text, false);
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// The top frame of each access, with names and locations capped.
fn sites(report: &RaceReport) -> Vec<AccessSite> {
    let capped = |s: &str| cut_at(s, KEPT_FRAME_CHARS).0.to_owned();
    report
        .accesses
        .iter()
        .take(2)
        .filter_map(|access| {
            let (function, location) = access.top()?;
            Some(AccessSite {
                access: capped(access.kind()),
                function: capped(function),
                location: location.map(capped),
            })
        })
        .collect()
}

struct CountingReader<'a> {
    inner: Box<dyn Read>,
    progress: &'a dyn Fn(u64),
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Within one run, a one-sided report (cut off in the log) counts towards the
/// full race with that side, when exactly one such race was seen; with two
/// or more candidates it is left alone rather than guessed.
pub fn merge_one_sided(races: &mut BTreeMap<Fingerprint, RaceSighting>) {
    let one_sided: Vec<Fingerprint> = races
        .values()
        .filter(|s| s.is_one_sided())
        .map(|s| s.fingerprint.clone())
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
        for source in &part.sources {
            whole.add_source(source);
        }
        whole.more_sources += part.more_sources;
        whole.sightings.extend(part.sightings);
        whole.order = whole.order.min(part.order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "\
==================
WARNING: DATA RACE
Write at 0x00c000012345 by goroutine 7:
  main.(*cache).put()
      /src/cache.go:20 +0x44

Previous read at 0x00c000012345 by goroutine 8:
  main.(*cache).get()
      /src/cache.go:30 +0x55

Goroutine 7 (running) created at:
  main.main()
      /src/main.go:10 +0x66
==================
";

    /// The same race cut off after its first side.
    const CUT: &str = "\
==================
WARNING: DATA RACE
Write at 0x00c000012345 by goroutine 7:
  main.(*cache).put()
      /src/cache.go:20 +0x44
";

    /// Another race sharing `put`'s side.
    const OTHER_FULL: &str = "\
==================
WARNING: DATA RACE
Write at 0x00c000012345 by goroutine 7:
  main.(*cache).put()
      /src/cache.go:20 +0x44

Previous write at 0x00c000012345 by goroutine 9:
  main.(*cache).evict()
      /src/cache.go:40 +0x77
==================
";

    fn reports(log: &str) -> Vec<RaceReport> {
        let mut found = Vec::new();
        crate::races::scan(log.as_bytes(), &mut |_| {}, &mut |r| found.push(r)).unwrap();
        found
    }

    fn scan_of(logs: &[(&str, &str)]) -> Scan {
        let mut scan = Scan::default();
        for (source, log) in logs {
            let (host, path) = source.split_once(':').expect("host:path");
            for report in reports(log) {
                scan.add(report, &Source::new(host, path));
            }
        }
        scan
    }

    /// One race seen 2,500 times in 250 logs: what a run keeps of it is
    /// bounded (100 sources listed, 1,024 sighting ids: the first 64 and the
    /// newest 960), the rest is counted.
    #[test]
    fn a_race_seen_everywhere_keeps_bounded_sources_and_sighting_ids() {
        let log = FULL.repeat(10);
        let mut scan = Scan::default();
        let mut ids = Vec::new();
        for n in 0..250 {
            let source = Source::new("h", &format!("machine-{n}.log"));
            for report in reports(&log) {
                ids.push(source.sighting_id(report.offset, &report.raw_digest));
                scan.add(report, &source);
            }
        }
        let sightings = scan.into_sightings();
        assert_eq!(sightings.len(), 1);
        let race = &sightings[0];
        assert_eq!(race.count, 2500);
        assert_eq!(race.sources.len(), KEPT_SOURCES);
        assert_eq!(race.more_sources, 150);
        assert_eq!(race.sightings.total(), 2500);
        let kept: Vec<SightingId> = race.sightings.iter().collect();
        assert_eq!(kept.len(), KEPT_FIRST_IDS + KEPT_NEWEST_IDS);
        assert_eq!(race.sightings.not_kept(), 2500 - 1024);
        assert_eq!(kept[..KEPT_FIRST_IDS], ids[..KEPT_FIRST_IDS]);
        assert_eq!(kept[KEPT_FIRST_IDS..], ids[ids.len() - KEPT_NEWEST_IDS..]);
    }

    /// A report longer than the kept cap (a deep stack of long names) is
    /// kept cut, and says so.
    #[test]
    fn a_huge_report_is_kept_cut_at_the_cap() {
        let mut log = String::from(
            "==================\nWARNING: DATA RACE\nWrite at 0x00c000012345 by goroutine 7:\n",
        );
        for n in 0..200 {
            log.push_str(&format!(
                "  main.{}{n}()\n      /src/deep.go:{n} +0x1\n",
                "f".repeat(400)
            ));
        }
        log.push_str(
            "\nPrevious read at 0x00c000012345 by goroutine 8:\n  main.(*cache).get()\n      \
             /src/cache.go:30 +0x55\n==================\n",
        );
        let found = reports(&log);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].text.len() > KEPT_REPORT_CAP,
            "{}",
            found[0].text.len()
        );
        let mut scan = Scan::default();
        for report in found {
            scan.add(report, &Source::new("h", "deep.log"));
        }
        let race = &scan.into_sightings()[0];
        let text = race.first.text.as_deref().expect("kept within the budget");
        assert!(race.first.cut);
        assert!(text.len() <= KEPT_REPORT_CAP, "{}", text.len());
        assert!(
            text.find("WARNING: DATA RACE").is_some_and(|at| at < 100),
            "the cut keeps the head"
        );
    }

    #[test]
    fn reports_of_one_race_fold_into_one_sighting() {
        let scan = scan_of(&[("h:a.log", FULL), ("h:b.log", FULL), ("h:a.log", FULL)]);
        let sightings = scan.into_sightings();
        assert_eq!(sightings.len(), 1);
        let race = &sightings[0];
        assert_eq!(race.count, 3);
        assert_eq!(&*race.first.source, "h:a.log");
        assert_eq!(&*race.newest().source, "h:a.log");
        assert_eq!(race.sources.len(), 2);
        assert!(!race.is_one_sided());
    }

    fn merged(logs: &[(&str, &str)]) -> Vec<RaceSighting> {
        let mut races = scan_of(logs).races;
        merge_one_sided(&mut races);
        let mut sightings: Vec<RaceSighting> = races.into_values().collect();
        sightings.sort_by_key(|s| s.order);
        sightings
    }

    #[test]
    fn a_cut_off_report_joins_the_one_full_race_with_its_side() {
        let sightings = merged(&[("h:cut.log", CUT), ("h:full.log", FULL)]);
        assert_eq!(sightings.len(), 1, "{sightings:#?}");
        let race = &sightings[0];
        assert_eq!(
            race.title,
            "Data race in main.(*cache).put() vs main.(*cache).get()"
        );
        assert_eq!(race.count, 2);
        assert_eq!(
            race.sources.iter().map(|s| &**s).collect::<Vec<_>>(),
            ["h:cut.log", "h:full.log"]
        );
        // Listed where the cut-off report was met first.
        assert_eq!(race.order, 1);
    }

    #[test]
    fn a_cut_off_report_with_two_candidate_races_stays_apart() {
        let sightings = merged(&[("h:1", CUT), ("h:2", FULL), ("h:3", OTHER_FULL)]);
        assert_eq!(sightings.len(), 3);
        assert!(sightings[0].is_one_sided());
        assert_eq!(sightings[0].count, 1);
        assert!(sightings[1..].iter().all(|s| s.count == 1));
    }

    #[test]
    fn a_cut_off_report_alone_stays_its_own_race() {
        let sightings = merged(&[("h:1", CUT), ("h:2", CUT)]);
        assert_eq!(sightings.len(), 1);
        assert!(sightings[0].is_one_sided());
        assert_eq!(sightings[0].count, 2);
        assert_eq!(sightings[0].title, "Data race in main.(*cache).put()");
    }

    #[test]
    fn directories_expand_to_sorted_regular_files_and_dash_is_stdin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/z.log"), "z").unwrap();
        std::fs::write(dir.path().join("b/a.log"), "aa").unwrap();
        let missing = dir.path().join("missing.log");
        let inputs =
            expand_inputs(&[dir.path().join("b"), PathBuf::from("-"), missing.clone()]).unwrap();
        let shown: Vec<(&str, Option<u64>)> = inputs
            .iter()
            .map(|i| (i.display.as_str(), i.size))
            .collect();
        let a = dir.path().join("b/a.log").display().to_string();
        let z = dir.path().join("b/c/z.log").display().to_string();
        let m = missing.display().to_string();
        assert_eq!(
            shown,
            [
                (a.as_str(), Some(2)),
                (z.as_str(), Some(1)),
                ("stdin", None),
                (m.as_str(), None)
            ]
        );
    }

    #[test]
    fn symlink_loops_and_links_to_seen_files_are_listed_once() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.log"), "a").unwrap();
        std::fs::write(root.join("sub/b.log"), "bb").unwrap();
        // A loop back to the top, a link to itself, a link to a file
        // already listed, and a link to a directory outside.
        symlink("..", root.join("sub/loop")).unwrap();
        symlink(".", root.join("self")).unwrap();
        symlink("a.log", root.join("current.log")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("c.log"), "ccc").unwrap();
        symlink(&outside, root.join("more")).unwrap();
        let inputs = expand_inputs(std::slice::from_ref(&root)).unwrap();
        let shown: Vec<String> = inputs
            .iter()
            .map(|i| {
                Path::new(&i.display)
                    .strip_prefix(&root)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(shown, ["a.log", "more/c.log", "sub/b.log"]);
        // The same directory given twice, through a link: still once.
        let inputs = expand_inputs(&[root.clone(), root.join("self")]).unwrap();
        assert_eq!(inputs.len(), 3);
    }

    #[test]
    fn gzip_is_recognised_by_its_magic_bytes_not_its_name() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain-name.log");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(FULL.as_bytes()).unwrap();
        gz.finish().unwrap();
        let input = &expand_inputs(&[path]).unwrap()[0];
        let read = std::cell::Cell::new(0);
        let mut scan = Scan::default();
        scan.read(input, "box", &|n| read.set(read.get() + n))
            .unwrap();
        assert_eq!(scan.reports, 1);
        assert_eq!(scan.bytes, FULL.len() as u64, "counted after gunzipping");
        assert_eq!(Some(read.get()), input.size, "progress counts raw bytes");
        let race = &scan.into_sightings()[0];
        assert!(race.first.source.starts_with("box:"));
    }
}
