# The units in systemd/ that NixOS starts, by name. nix/module.nix adds its drop-ins to
# these; tests/nix_flake.rs checks this list against the files in systemd/.
{
  socket = "rtmp-recorder-ingest";
  services = [
    "rtmp-recorder-ingest"
    "rtmp-recorder-remux"
    "rtmp-recorder-publish"
  ];
  paths = [
    "rtmp-recorder-remux"
    "rtmp-recorder-publish"
  ];
}
