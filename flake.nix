{
  description = "rtmp-recorder: records RTMP streams into chunks, remuxes them to faststart MP4 and uploads them to S3";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The EC2 appliance for one architecture: the module, enabled, on Amazon's hardware.
      appliance =
        system:
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            ./nix/appliance.nix
            {
              nixpkgs.hostPlatform = system;
              services.rtmp-recorder.package = self.packages.${system}.default;
            }
          ];
        };
    in
    {
      overlays.default = final: _prev: {
        rtmp-recorder = final.callPackage ./nix/package.nix { };
      };

      nixosModules.default = {
        imports = [ ./nix/module.nix ];
      };

      packages = forAllSystems (pkgs: {
        default = pkgs.callPackage ./nix/package.nix { };
        # A .vhd disk image with nix-support/image-info.json, from nixpkgs' Amazon image builder.
        ami = (appliance pkgs.stdenv.hostPlatform.system).config.system.build.images.amazon;
      });

      nixosConfigurations = {
        recorder = appliance "x86_64-linux";
        recorder-aarch64 = appliance "aarch64-linux";
      };

      checks = forAllSystems (pkgs: {
        vm = pkgs.testers.runNixOSTest (
          import ./nix/vm-test.nix {
            inherit pkgs;
            module = {
              imports = [ self.nixosModules.default ];
              services.rtmp-recorder.package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
            };
          }
        );
      });

      # The tools `cargo test` drives. The suite itself targets Debian 12 (CI): a few tests
      # load nginx's RTMP module and /usr/bin/time from Debian's paths, and s3s-fs comes from
      # `cargo install s3s-fs --version 0.14.1 --features binary`.
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.ffmpeg
            pkgs.gst_all_1.gstreamer
            pkgs.gst_all_1.gst-plugins-base
            pkgs.gst_all_1.gst-plugins-good
            pkgs.gst_all_1.gst-plugins-bad
            pkgs.gst_all_1.gst-plugins-ugly
            pkgs.gst_all_1.gst-libav
            (pkgs.nginx.override { modules = [ pkgs.nginxModules.rtmp ]; })
            pkgs.chromium
            pkgs.awscli2
            (pkgs.python3.withPackages (ps: [ ps.moto ] ++ ps.moto.optional-dependencies.server))
            pkgs.systemd
            pkgs.time
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
