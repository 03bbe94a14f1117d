# The rtmp-recorder binary plus the systemd units, sysusers and tmpfiles entries from systemd/.
# The units are the single source for every deployment (.deb, .rpm, NixOS): they name
# /usr/bin/rtmp-recorder, which is rewritten here to this package's binary.
{
  lib,
  rustPlatform,
  versionCheckHook,
}:

let
  manifest = (lib.importTOML ../Cargo.toml).package;
in
rustPlatform.buildRustPackage {
  pname = manifest.name;
  inherit (manifest) version;

  # Only what `cargo build` and the install step read, so editing tests, docs or the flake
  # does not rebuild the package. Cargo.toml declares the benches, the example and the one test
  # crate's root (tests/tests.rs), so cargo needs those files even though they are not built here.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../benches
      ../examples
      ../tests/tests.rs
      ../systemd
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The test suite drives real ffmpeg, GStreamer, nginx-rtmp, Chromium and S3 servers and
  # pins their behaviour on Debian 12's versions; `cargo test` on CI runs it. Here the built
  # binary is checked by running it (below) and end to end by checks.<system>.vm.
  doCheck = false;

  nativeInstallCheckInputs = [ versionCheckHook ];
  doInstallCheck = true;

  postInstall = ''
    install -Dm444 -t $out/lib/systemd/system systemd/*.service systemd/*.socket systemd/*.path
    for unit in $out/lib/systemd/system/*.service; do
      substituteInPlace "$unit" --replace-fail /usr/bin/rtmp-recorder "$out/bin/rtmp-recorder"
    done
    if grep -rn /usr/bin/ $out/lib/systemd/system; then
      echo "a unit still names a program under /usr/bin, which does not exist on NixOS" >&2
      exit 1
    fi
    install -Dm444 systemd/rtmp-recorder.sysusers $out/lib/sysusers.d/rtmp-recorder.conf
    install -Dm444 systemd/rtmp-recorder.tmpfiles $out/lib/tmpfiles.d/rtmp-recorder.conf
  '';

  meta = {
    description = manifest.description;
    license = lib.licenses.mit;
    mainProgram = "rtmp-recorder";
    platforms = lib.platforms.linux;
  };
}
