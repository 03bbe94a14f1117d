# checks.<system>.vm: one NixOS machine as an operator would set it up. An S3-compatible
# server runs beside the recorder (moto, the server the project's CI tests publish to;
# nixpkgs marks MinIO insecure since upstream abandoned it), the module points the recorder
# at it with credentials from a file outside the Nix store, ffmpeg publishes a real H.264 +
# AAC stream into the socket, and the MP4s must arrive in the bucket and play.
{ pkgs, module }:

let
  bucket = "recordings";
  s3Port = 5000;
  moto = pkgs.python3.withPackages (ps: [ ps.moto ] ++ ps.moto.optional-dependencies.server);
in
{
  name = "rtmp-recorder";

  nodes.recorder =
    { pkgs, ... }:
    {
      imports = [ module ];

      virtualisation.memorySize = 2048;
      virtualisation.diskSize = 4096;

      environment.systemPackages = [
        pkgs.ffmpeg-headless
        pkgs.awscli2
      ];

      systemd.services.s3-server = {
        description = "S3-compatible test server (moto)";
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          ExecStart = "${moto}/bin/moto_server -H 127.0.0.1 -p ${toString s3Port}";
          DynamicUser = true;
        };
      };

      services.rtmp-recorder = {
        enable = true;
        openFirewall = true;
        chunkDuration = "4s";
        s3 = {
          inherit bucket;
          prefix = "vm";
          region = "us-west-2";
          endpoint = "http://127.0.0.1:${toString s3Port}";
        };
        environmentFile = "/run/keys/rtmp-recorder.env";
        logLevel = "debug";
      };
    };

  testScript = ''
    aws = (
        "env AWS_ACCESS_KEY_ID=vm AWS_SECRET_ACCESS_KEY=vm AWS_REGION=us-west-2 "
        "aws --endpoint-url http://127.0.0.1:${toString s3Port}"
    )
    prefix = "s3://${bucket}/vm/live/cam1/"

    recorder.start()
    recorder.wait_for_unit("s3-server.service")
    recorder.wait_for_open_port(${toString s3Port})

    with subtest("the socket listens before any stage runs"):
        recorder.wait_for_unit("rtmp-recorder-ingest.socket")
        # Looked at, not connected to: a connection would start ingest before its
        # environment file exists.
        recorder.succeed("ss -Hltn 'sport = :1935' | grep -q LISTEN")
        recorder.succeed("systemctl is-active rtmp-recorder-remux.path rtmp-recorder-publish.path")
        recorder.fail("systemctl is-active rtmp-recorder-ingest.service")

    with subtest("the operator installs credentials and creates the bucket"):
        recorder.succeed(
            "install -d -m 0750 /run/keys",
            "printf 'AWS_ACCESS_KEY_ID=vm\\nAWS_SECRET_ACCESS_KEY=vm\\n' > /run/keys/rtmp-recorder.env",
            "chmod 0400 /run/keys/rtmp-recorder.env",
            f"{aws} s3api create-bucket --bucket ${bucket}"
            " --create-bucket-configuration LocationConstraint=us-west-2",
        )

    with subtest("ffmpeg publishes 14 s of H.264 + AAC, keyframes every second"):
        recorder.succeed(
            "ffmpeg -hide_banner -loglevel error -re"
            " -f lavfi -i testsrc=size=640x360:rate=25"
            " -f lavfi -i sine=frequency=440:sample_rate=48000"
            " -t 14 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25 -sc_threshold 0"
            " -c:a aac -b:a 96k -f flv rtmp://127.0.0.1:1935/live/cam1",
            timeout=120,
        )

    with subtest("four 4 s chunks arrive in the bucket, each with its manifest"):
        recorder.wait_until_succeeds(
            f"test $({aws} s3 ls --recursive {prefix} | grep -c '\\.mp4$') -eq 4"
            f" && test $({aws} s3 ls --recursive {prefix} | grep -c '\\.json$') -eq 4",
            timeout=180,
        )

    with subtest("the uploaded MP4s play and add up to the published 14 s"):
        recorder.succeed(f"{aws} s3 cp --recursive {prefix} /tmp/got")
        durations = recorder.succeed(
            "find /tmp/got -name '*.mp4' -print0 | sort -z | xargs -0 -n1"
            " ffprobe -v error -show_entries format=duration -of csv=p=0"
        ).split()
        assert len(durations) == 4, durations
        total = sum(float(d) for d in durations)
        assert 13.5 < total < 14.5, f"chunks add up to {total} s: {durations}"
        recorder.succeed(
            "find /tmp/got -name '*.mp4' -print0"
            " | xargs -0 -I{} ffmpeg -v error -xerror -i {} -f null -"
        )

    with subtest("systemctl status shows what each stage did"):
        recorder.wait_until_succeeds(
            "systemctl show -P StatusText rtmp-recorder-ingest.service"
            " | grep -q '0 live stream(s), .* 4 chunk(s) written'",
            timeout=30,
        )
        ingest = recorder.succeed("systemctl status rtmp-recorder-ingest.service")
        assert "Status: \"0 live stream(s)" in ingest, ingest
        # remux and publish drain their inbox and exit: their status is the last run's
        # exit and their journal.
        for stage, said in [("remux", "remuxed"), ("publish", "published")]:
            status = recorder.succeed(f"systemctl status rtmp-recorder-{stage}.service || true")
            assert "status=0/SUCCESS" in status, status
            result = recorder.succeed(f"systemctl show -P Result rtmp-recorder-{stage}.service")
            assert result.strip() == "success", f"{stage}: {result}"
            recorder.succeed(f"journalctl -u rtmp-recorder-{stage}.service --grep '{said}'")
            recorder.succeed(f"systemctl is-active rtmp-recorder-{stage}.path")

    with subtest("the local copies were archived, nothing failed"):
        for inbox in ["remux", "publish", "failed"]:
            recorder.succeed(
                f"test -z \"$(find /var/lib/rtmp-recorder/{inbox} -mindepth 1 -print -quit)\""
            )
        recorder.succeed("ls /var/lib/rtmp-recorder/archive | grep -q '\\.mp4$'")
  '';
}
