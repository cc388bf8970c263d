//! The container image's layout, proven with a real `buildah` build.
//!
//! No registry is reachable here, so the Dockerfile's base images cannot be
//! pulled. The test builds the final stage's layout `FROM scratch` instead:
//! the binary where the Dockerfile installs it, the libraries `ldd` names,
//! CA certificates, and the non-root user, with the Dockerfile's own `USER`,
//! `WORKDIR` and `CMD` lines. It then runs the binary inside the image as
//! that user. (The Debian packages the Dockerfile installs are checked by
//! reading it.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap()
}

/// The lines of the last stage (after the last FROM).
fn final_stage(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("FROM "))
        .expect("a FROM line");
    lines[start..].iter().map(|l| l.to_string()).collect()
}

fn instruction<'a>(stage: &'a [String], name: &str) -> &'a str {
    stage
        .iter()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in the final stage"))
}

#[test]
fn the_dockerfile_runs_as_non_root_with_git_and_ca_certificates() {
    let text = dockerfile();
    assert!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")) >= 2,
        "multi-stage"
    );
    let stage = final_stage(&text).join("\n");
    assert!(
        stage.contains("ca-certificates") && stage.contains(" git"),
        "{stage}"
    );
    let user = instruction(&final_stage(&text), "USER")
        .trim_start_matches("USER ")
        .to_owned();
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    assert!(
        !final_stage(&text)
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT")),
        "GitLab runs job scripts through the image's shell: no ENTRYPOINT"
    );
    assert!(text.contains("/usr/local/bin/rp-devops"));
}

fn buildah_available() -> bool {
    Command::new("buildah")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn copy_with_parents(file: &Path, root: &Path) {
    let target = root.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(file, &target).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// The shared libraries the binary loads, as `ldd` lists them.
fn libraries(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd").arg(binary).output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

struct Buildah {
    storage: PathBuf,
}

impl Buildah {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(self.storage.join("root"))
            .arg("--runroot")
            .arg(self.storage.join("run"));
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.cmd().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

#[test]
fn the_image_layout_runs_the_binary_as_the_non_root_user() {
    if !buildah_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "buildah is missing: .ci/apt-packages.d/image.txt installs it"
        );
        eprintln!("skipped: buildah is not installed (apt-get install -y buildah)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    let root = context.join("rootfs");

    // The binary, without debug info (the release build has little).
    let binary = root.join("usr/local/bin/rp-devops");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_rp-devops"))
        .arg(&binary)
        .status()
        .unwrap();
    assert!(status.success());
    for library in libraries(Path::new(env!("CARGO_BIN_EXE_rp-devops"))) {
        copy_with_parents(&library, &root);
    }
    copy_with_parents(Path::new("/etc/ssl/certs/ca-certificates.crt"), &root);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nrp-devops:x:10001:10001::/home/rp-devops:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nrp-devops:x:10001:\n").unwrap();
    std::fs::create_dir_all(root.join("home/rp-devops")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    // The non-root user owns its home, as useradd --create-home makes it.
    let status = Command::new("chown")
        .args(["-R", "10001:10001"])
        .arg(root.join("home/rp-devops"))
        .status()
        .unwrap();
    assert!(status.success());

    // The Dockerfile's own final-stage settings, on the scratch layout.
    let stage = final_stage(&dockerfile());
    let containerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\n{}\n{}\n{}\n",
        instruction(&stage, "USER"),
        instruction(&stage, "WORKDIR"),
        instruction(&stage, "CMD"),
    );
    std::fs::write(context.join("Containerfile"), containerfile).unwrap();

    let buildah = Buildah {
        storage: dir.path().join("storage"),
    };
    buildah.run(&[
        "bud",
        "--isolation",
        "chroot",
        "-t",
        "rp-devops-layout-test",
        "-f",
        context.join("Containerfile").to_str().unwrap(),
        context.to_str().unwrap(),
    ]);
    let user = buildah.run(&[
        "inspect",
        "--type",
        "image",
        "--format",
        "{{.OCIv1.Config.User}}",
        "rp-devops-layout-test",
    ]);
    assert_eq!(user.trim(), "10001:10001");

    let container = buildah.run(&["from", "rp-devops-layout-test"]);
    let container = container.trim();
    let version = buildah.run(&[
        "run",
        "--isolation",
        "chroot",
        container,
        "--",
        "rp-devops",
        "--version",
    ]);
    assert_eq!(
        version.trim(),
        format!("rp-devops {}", env!("CARGO_PKG_VERSION"))
    );
    // A real job inside the image, as the non-root user: an offline dry run
    // that writes its JSON result (the home directory must be writable).
    let scan = buildah.run(&[
        "run",
        "--isolation",
        "chroot",
        container,
        "--",
        "rp-devops",
        "scan-races",
        "--dry-run",
        "--json",
        "/etc/passwd",
    ]);
    assert!(scan.contains("\"reports\": 0"), "{scan}");
    buildah.run(&["rm", container]);
    buildah.run(&["rmi", "rp-devops-layout-test"]);
}
