# Reads nix/module.nix's option declarations with Debian's Nix 2.8 and no nixpkgs, for
# tests/nix_flake.rs. The `lib` here is a stand-in that only records what each option
# declares: names, descriptions, examples and types. It checks what needs no nixpkgs: every
# option is documented, every strMatching pattern compiles, and every example is a value its
# type accepts. The real types, defaults and config are checked by evaluating against
# nixpkgs itself (nix_flake.rs runs that when NIXPKGS_PATH is set).
let
  inherit (builtins)
    all
    any
    attrNames
    attrValues
    concatMap
    elem
    isAttrs
    isBool
    isInt
    isList
    isString
    match
    substring
    ;

  type = name: arg: {
    _type = "stub-type";
    inherit name arg;
  };

  types = {
    bool = type "bool" null;
    str = type "str" null;
    int = type "int" null;
    package = type "package" null;
    ints = {
      unsigned = type "ints.unsigned" null;
      positive = type "ints.positive" null;
    };
    either =
      a: b:
      type "either" [
        a
        b
      ];
    oneOf = ts: type "oneOf" ts;
    nullOr = t: type "nullOr" t;
    listOf = t: type "listOf" t;
    nonEmptyListOf = t: type "nonEmptyListOf" t;
    attrsOf = t: type "attrsOf" t;
    enum = values: type "enum" values;
    # A pattern Nix cannot compile fails here, as it would on first use in a real evaluation.
    strMatching = re: builtins.seq (match re "") (type "strMatching" re);
    pathWith = spec: type "pathWith" spec;
  };

  lib = {
    inherit types;
    mkOption = declaration: declaration // { _type = "option"; };
    mkEnableOption = name: {
      _type = "option";
      description = "Whether to enable ${name}.";
      example = true;
      type = types.bool;
    };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
  };

  # Whether `t` accepts `v`; a literalExpression example is Nix code, not a value.
  accepts =
    t: v:
    if isAttrs v && v._type or null == "literalExpression" then
      true
    else if t.name == "bool" then
      isBool v
    else if t.name == "str" then
      isString v
    else if t.name == "int" then
      isInt v
    else if t.name == "ints.unsigned" then
      isInt v && v >= 0
    else if t.name == "ints.positive" then
      isInt v && v > 0
    else if t.name == "either" || t.name == "oneOf" then
      any (alt: accepts alt v) t.arg
    else if t.name == "nullOr" then
      v == null || accepts t.arg v
    else if t.name == "listOf" then
      isList v && all (accepts t.arg) v
    else if t.name == "nonEmptyListOf" then
      isList v && v != [ ] && all (accepts t.arg) v
    else if t.name == "attrsOf" then
      isAttrs v && all (accepts t.arg) (attrValues v)
    else if t.name == "enum" then
      elem v t.arg
    else if t.name == "strMatching" then
      isString v && match t.arg v != null
    else if t.name == "pathWith" then
      isString v
      && (t.arg.absolute or null != true || substring 0 1 v == "/")
      && (t.arg.inStore or null != false || substring 0 11 v != "/nix/store/")
    else
      throw "tests/nix_flake/options.nix: no stand-in for type ${t.name}; add one";

  module = import ../../nix/module.nix {
    inherit lib;
    config = throw "the stand-in evaluation reads declarations only, not config";
    pkgs = throw "the stand-in evaluation reads declarations only, not pkgs";
  };

  collect =
    path: node:
    if node._type or null == "option" then
      [
        {
          path = builtins.concatStringsSep "." path;
          description = node.description or "";
          hasExample = node ? example;
          exampleAccepted = node ? example && accepts node.type node.example;
          type = node.type.name;
        }
      ]
    else
      concatMap (name: collect (path ++ [ name ]) node.${name}) (attrNames node);
in
collect [ "services" "rtmp-recorder" ] module.options.services.rtmp-recorder
