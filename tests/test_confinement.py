"""Docker's default confinement: moby's seccomp profile (with its capability, architecture
and kernel conditions) in every container's spec, --security-opt (seccomp=unconfined|
<file>, no-new-privileges, apparmor=...), --privileged, and AppArmor's docker-default
profile text. The attacks of issue 17 (user namespace + mount, keyring syscalls) repeated
inside real crun containers."""

from __future__ import annotations

import json
import os
import struct
import tempfile

import pytest

from dockweb.docker.run_options import ClientOption, build_spec, compact_json
from dockweb.runtime import apparmor, oci, seccomp
from dockweb.runtime.containers import ContainerSpec, MountSpec
from dockweb.runtime.containers.spec import parse_security_opt
from dockweb.runtime.errors import ContainerStartError, InvalidContainerSpec
from tests.support.containers import busybox_store, logs_text, managed, run_to_exit

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def allowed(profile: dict) -> set[str]:
    """Names the profile allows outright (SCMP_ACT_ALLOW without argument conditions)."""
    return {
        n
        for r in profile.get("syscalls", [])
        if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
        for n in r["names"]
    }


# -- the profile, as moby's setupSeccomp filters it ----------------------------------------


def test_the_default_profile_keeps_only_what_the_default_capabilities_allow():
    p = seccomp.default_profile(oci.DEFAULT_CAPABILITIES, arch="amd64", kernel=(6, 1))
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(p)
    assert {"read", "write", "execve", "chroot", "arch_prctl", "ptrace"} <= names
    # CAP_SYS_ADMIN's rule (mount, unshare, setns...) and others the defaults lack
    for name in (
        "mount",
        "unshare",
        "setns",
        "bpf",
        "add_key",
        "keyctl",
        "reboot",
        "init_module",
        "open_by_handle_at",
        "clock_settime",
    ):
        assert name not in names
    # clone only without namespace flags; clone3 answers ENOSYS so libc falls back to it
    (clone,) = [r for r in p["syscalls"] if r["names"] == ["clone"]]
    assert clone["args"] == [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]
    (clone3,) = [r for r in p["syscalls"] if r["names"] == ["clone3"]]
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", 38)
    # the conditions are gone from the spec's form
    assert not any({"includes", "excludes", "comment", "name"} & set(r) for r in p["syscalls"])


def test_added_capabilities_allow_their_syscalls():
    caps = oci.capabilities(["SYS_ADMIN", "SYS_TIME"], [])
    p = seccomp.default_profile(caps, arch="amd64", kernel=(6, 1))
    assert {"mount", "unshare", "setns", "clone", "clone3", "clock_settime"} <= allowed(p)
    # the rules that exist for a container without CAP_SYS_ADMIN are excluded
    assert not [
        r for r in p["syscalls"] if r["names"] == ["clone3"] and r["action"] != ("SCMP_ACT_ALLOW")
    ]
    dropped = oci.capabilities([], ["SYS_CHROOT"])
    assert "chroot" not in allowed(seccomp.default_profile(dropped, arch="amd64"))


def test_architecture_and_kernel_conditions():
    arm = seccomp.default_profile(oci.DEFAULT_CAPABILITIES, arch="arm64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arm_fadvise64_64" in allowed(arm) and "arch_prctl" not in allowed(arm)
    s390 = seccomp.default_profile(oci.DEFAULT_CAPABILITIES, arch="s390x", kernel=(6, 1))
    clones = [r for r in s390["syscalls"] if r["names"] == ["clone"]]
    assert [r["args"][0]["index"] for r in clones] == [1]  # s390's argument order
    # ptrace is allowed from kernel 4.8 (older ones let seccomp be bypassed with it)
    old = seccomp.default_profile(oci.DEFAULT_CAPABILITIES, arch="amd64", kernel=(4, 7))
    assert "ptrace" not in allowed(old)
    assert "ptrace" in allowed(
        seccomp.default_profile(oci.DEFAULT_CAPABILITIES, arch="amd64", kernel=(4, 8))
    )
    assert seccomp.kernel_version("3.12.25-gentoo") == (3, 12)
    assert seccomp.kernel_version("6.1-rc5") == (6, 1)
    assert seccomp.native_arch("x86_64") == "amd64"
    assert seccomp.native_arch("aarch64") == "arm64"


def test_a_custom_profile_as_moby_loads_it():
    body = json.dumps(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"name": "mkdir", "action": "SCMP_ACT_ERRNO"},
                {
                    "names": ["mkdirat"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 13,
                    "includes": {"caps": ["CAP_SYS_ADMIN"]},
                },
            ],
        }
    )
    p = seccomp.load_profile(body, oci.DEFAULT_CAPABILITIES, arch="amd64")
    assert p == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    # Go's decoder matches field names whatever their case
    assert seccomp.load_profile('{"DefaultAction": "SCMP_ACT_LOG"}', [])["defaultAction"] == (
        "SCMP_ACT_LOG"
    )
    # neither a default action nor rules: no seccomp at all, as moby
    assert seccomp.load_profile("{}", []) is None


@pytest.mark.parametrize(
    "body, message",
    [
        ("{", "Decoding seccomp profile failed: unexpected end of JSON input"),
        (
            "[]",
            "Decoding seccomp profile failed: json: cannot unmarshal array into Go value "
            "of type seccomp.Seccomp",
        ),
        (
            '{"defaultAction": 5}',
            "Decoding seccomp profile failed: json: cannot unmarshal "
            "number into Go struct field Seccomp.defaultAction of type specs.LinuxSeccompAction",
        ),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], '
            '"archMap": [{"architecture": "SCMP_ARCH_X86"}]}',
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either "
            "'architectures' or 'archMap'",
        ),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": '
            '["write"], "action": "SCMP_ACT_ALLOW"}]}',
            "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or "
            "'names'",
        ),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": '
            '"SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}}]}',
            'Decoding seccomp profile failed: invalid kernel version: "4", expected '
            '"<kernel>.<major>"',
        ),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": '
            '"SCMP_ACT_ALLOW", "excludes": {"minKernel": "0.0"}}]}',
            'Decoding seccomp profile failed: invalid kernel version: "0.0", expected '
            '"<kernel>.<major>": version cannot be 0.0',
        ),
    ],
)
def test_profiles_moby_refuses(body, message):
    with pytest.raises(seccomp.ProfileError) as e:
        seccomp.load_profile(body, oci.DEFAULT_CAPABILITIES, arch="amd64", kernel=(6, 1))
    assert str(e.value) == message


def test_the_spec_gets_the_profile_the_options_choose():
    caps = list(oci.DEFAULT_CAPABILITIES)
    default = oci.seccomp("", privileged=False, bounding=caps)
    assert default == seccomp.default_profile(caps)
    assert oci.seccomp("builtin", privileged=False, bounding=caps) == default
    assert oci.seccomp("unconfined", privileged=False, bounding=caps) is None
    assert oci.seccomp("", privileged=True, bounding=caps) is None  # privileged: none
    custom = '{"defaultAction": "SCMP_ACT_ALLOW"}'
    assert oci.seccomp(custom, privileged=True, bounding=caps) == {
        "defaultAction": "SCMP_ACT_ALLOW"
    }
    with pytest.raises(ContainerStartError) as e:
        oci.seccomp("xyz", privileged=False, bounding=caps)
    assert str(e.value) == (
        "Decoding seccomp profile failed: invalid character 'x' looking for beginning of value"
    )
    assert e.value.exit_code == 125


# -- --security-opt, as the docker client and dockerd read it -------------------------------


def test_security_options_as_dockerd_parses_them():
    o = parse_security_opt(["no-new-privileges", "seccomp=unconfined", "apparmor=foo"])
    assert (o.no_new_privileges, o.seccomp, o.apparmor) == (True, "unconfined", "foo")
    assert parse_security_opt(["no-new-privileges:true"]).no_new_privileges is True
    assert parse_security_opt(["no-new-privileges=false"]).no_new_privileges is False
    assert parse_security_opt(["label=disable", "disable", "label:type:x"]).seccomp == ""
    for opt, n in (("foo", 1), ("foo=bar", 2), ("no-new-privileges=maybe", 2)):
        with pytest.raises(InvalidContainerSpec) as e:
            parse_security_opt([opt])
        assert str(e.value) == f'invalid --security-opt {n}: "{opt}"'


def test_the_client_reads_and_compacts_a_profile_file(tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{\n  "defaultAction" : "SCMP_ACT_ALLOW",\n  "x": "a b\\" c"\n}\n')
    spec = build_spec("img", security_opt=[f"seccomp={f}", "no-new-privileges"])
    assert spec.security_opt == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW","x":"a b\\" c"}',
        "no-new-privileges",
    ]
    assert build_spec("img", security_opt=["seccomp:unconfined"]).security_opt == [
        "seccomp:unconfined"
    ]
    with pytest.raises(ClientOption) as e:
        build_spec("img", security_opt=[f"seccomp={tmp_path}/nope.json"])
    assert str(e.value) == (
        f"opening seccomp profile ({tmp_path}/nope.json) failed: open {tmp_path}/nope.json: "
        "no such file or directory"
    )
    f.write_text("{oops}")
    with pytest.raises(ClientOption) as e:
        build_spec("img", security_opt=[f"seccomp={f}"])
    assert str(e.value) == (
        f"compacting json for seccomp profile ({f}) failed: invalid character 'o' looking "
        "for beginning of object key string"
    )
    with pytest.raises(ClientOption) as e:
        build_spec("img", security_opt=["nonsense"])
    assert str(e.value) == 'Invalid --security-opt: "nonsense"'
    assert compact_json('[ 1 , "x  y" ]') == '[1,"x  y"]'


# -- AppArmor ---------------------------------------------------------------------------------


def test_the_docker_default_apparmor_profile_text():
    everything = apparmor.generate("docker-default", "", lambda m: True)
    assert everything.startswith(
        "# profile generated by github.com/moby/profiles/apparmor.\n"
        "abi <abi/3.0>,\n"
        "\n#include <tunables/global>\n"
        '\nprofile "docker-default" flags=(attach_disconnected,mediate_deleted) {\n'
        "  #include <abstractions/base>\n"
        "\n  network,\n"
    )
    assert 'signal (receive) peer="unconfined",' in everything
    assert 'signal (send,receive) peer="docker-default",' in everything
    assert 'ptrace (trace,tracedby,read,readby) peer="docker-default",\n}\n' in everything
    assert "  deny mount,\n" in everything
    bare = apparmor.generate("p2", "dockerd", lambda m: False)
    assert bare.startswith(
        "# profile generated by github.com/moby/profiles/apparmor.\n"
        "\n\n@{PROC}=/proc/\n"  # the template's empty abi line, then its imports' newline
        '\nprofile "p2" flags=(attach_disconnected,mediate_deleted) {\n  network,\n'
    )
    assert 'signal (receive) peer="dockerd",' in bare


def test_apparmor_where_the_host_has_none(tmp_path):
    assert apparmor.supported(str(tmp_path / "absent")) is False
    (tmp_path / "enabled").write_text("N\n")
    assert apparmor.supported(str(tmp_path / "enabled")) is False
    (tmp_path / "profiles").write_text("docker-default (enforce)\nother one (complain)\n")
    assert apparmor.is_loaded("docker-default", str(tmp_path / "profiles"))
    assert apparmor.is_loaded("other one", str(tmp_path / "profiles"))
    assert not apparmor.is_loaded("docker", str(tmp_path / "profiles"))
    if not apparmor.supported():  # this host: no profile, no error
        assert apparmor.container_profile("", False) == ""
        assert apparmor.container_profile("foo", True) == ""


def test_a_privileged_spec():
    spec = oci.runtime_spec(
        rootfs="/r",
        args=["sh"],
        env=[],
        cwd="/",
        user=oci.ExecUser(),
        hostname="h",
        tty=False,
        network="none",
        cgroups_path="x",
        etc_files={},
        privileged=True,
        capabilities=oci.host_capabilities(),
    )
    linux = spec["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" and d["type"] == "c" for d in linux["devices"])
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]
    plain = oci.runtime_spec(
        rootfs="/r",
        args=["sh"],
        env=[],
        cwd="/",
        user=oci.ExecUser(),
        hostname="h",
        tty=False,
        network="none",
        cgroups_path="x",
        etc_files={},
    )
    assert "ro" in next(m for m in plain["mounts"] if m["destination"] == "/sys")["options"]
    assert plain["linux"]["maskedPaths"] == oci.MASKED_PATHS


# -- real containers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_and_image(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "confinement")


@pytest.fixture(scope="module")
def image(store_and_image):
    return store_and_image[1]


@pytest.fixture(scope="module")
def manager(store_and_image):
    yield from managed(store_and_image[0])


def syscall_elf(nr: int) -> bytes:
    """A static x86_64 program that makes syscall ``nr`` with zero arguments and exits with
    the errno it got (0 on success): seccomp's EPERM (1) tells a blocked call."""
    code = (
        bytes.fromhex("31ff31f631d24d31d24d31c0")  # xor edi, esi, edx, r10, r8
        + b"\xb8"
        + nr.to_bytes(4, "little")  # mov eax, nr
        + bytes.fromhex("0f05f7d889c7b83c0000000f05")  # syscall; neg; exit(-ret)
    )
    base, size = 0x400000, 120 + len(code)
    ehdr = struct.pack(
        "<4sBBBBB7xHHIQQQIHHHHHH",
        b"\x7fELF",
        2,
        1,
        1,
        0,
        0,
        2,
        0x3E,
        1,
        base + 120,
        64,
        0,
        0,
        64,
        56,
        1,
        0,
        0,
        0,
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + code


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    """/t in a container: add_key (248) and keyctl (250) callers."""
    d = tmp_path_factory.mktemp("tools")
    for name, nr in (("add_key", 248), ("keyctl", 250)):
        (d / name).write_bytes(syscall_elf(nr))
        os.chmod(d / name, 0o755)
    return MountSpec("bind", str(d), "/t", readonly=True)


def run(manager, image, script: str, **kw) -> tuple[int, str]:
    c, code = run_to_exit(manager, image, "sh", "-c", script, **kw)
    out = logs_text(manager, c.id)
    manager.remove(c.id, force=True)
    return code, out


ATTACK = "unshare -U -r -m sh -c 'mount -t tmpfs x /tmp && echo mounted'"


@root_only
def test_a_container_runs_under_seccomp_and_the_namespace_attack_fails(manager, image):
    code, out = run(manager, image, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    assert (code, out) == (0, "NoNewPrivs:\t0\nSeccomp:\t2\n")
    code, out = run(manager, image, ATTACK)
    assert code != 0 and "mounted" not in out
    assert "Operation not permitted" in out
    # the same, unconfined: the kernel lets an unprivileged user namespace mount a tmpfs
    code, out = run(manager, image, ATTACK, security_opt=["seccomp=unconfined"])
    assert (code, out) == (0, "mounted\n")
    code, out = run(
        manager, image, "grep '^Seccomp:' /proc/self/status", security_opt=["seccomp=unconfined"]
    )
    assert out == "Seccomp:\t0\n"


@root_only
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the syscall callers are x86_64")
def test_keyring_syscalls_are_blocked(manager, image, tools):
    code, out = run(manager, image, "/t/add_key; echo $?; /t/keyctl; echo $?", mounts=[tools])
    assert out == "1\n1\n"  # EPERM from the filter
    code, out = run(
        manager,
        image,
        "/t/add_key; echo $?; /t/keyctl; echo $?",
        mounts=[tools],
        security_opt=["seccomp=unconfined"],
    )
    assert out == "14\n22\n"  # the kernel's own answers: EFAULT, EINVAL


@root_only
def test_capabilities_open_their_syscalls(manager, image):
    # with CAP_SYS_ADMIN the profile allows unshare and mount, as Docker's does
    code, out = run(
        manager,
        image,
        "unshare -m sh -c 'mount -t tmpfs x /tmp && echo mounted'",
        cap_add=["SYS_ADMIN"],
    )
    assert (code, out) == (0, "mounted\n")


@root_only
def test_no_new_privileges(manager, image):
    for opt in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
        code, out = run(
            manager, image, "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status", security_opt=[opt]
        )
        assert out == "NoNewPrivs:\t1\nSeccomp:\t2\n", opt
    code, out = run(
        manager,
        image,
        "grep '^NoNewPrivs:' /proc/self/status",
        security_opt=["no-new-privileges=false"],
    )
    assert out == "NoNewPrivs:\t0\n"


@root_only
def test_a_custom_profile(manager, image, tmp_path):
    f = tmp_path / "deny-mkdir.json"
    f.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            },
            indent=2,
        )
    )
    spec = build_spec(image, ["sh", "-c", "mkdir /tmp/x; echo $?"], security_opt=[f"seccomp={f}"])
    c = manager.create(spec)
    manager.start(c.id)
    assert manager.wait(c.id) == 0
    assert "mkdir: can't create directory '/tmp/x': Operation not permitted" in logs_text(
        manager, c.id
    )
    manager.remove(c.id, force=True)
    # a profile moby cannot decode: the start fails with its words, the container stays
    c = manager.create(
        ContainerSpec(image=image, cmd=["true"], security_opt=['seccomp={"defaultAction": 1}'])
    )
    with pytest.raises(ContainerStartError) as e:
        manager.start(c.id)
    assert str(e.value) == (
        "Decoding seccomp profile failed: json: cannot unmarshal number into Go struct field "
        "Seccomp.defaultAction of type specs.LinuxSeccompAction"
    )
    assert manager.get(c.id).status.value == "created"
    manager.remove(c.id, force=True)
    with pytest.raises(InvalidContainerSpec) as e:
        manager.create(ContainerSpec(image=image, cmd=["true"], security_opt=["seccomp"]))
    assert str(e.value) == 'invalid --security-opt 1: "seccomp"'


@root_only
def test_a_privileged_container_has_no_seccomp(manager, image):
    code, out = run(
        manager,
        image,
        "grep -E '^(Seccomp|CapEff):' /proc/self/status; test -c /dev/null && echo dev; "
        "grep -c . /proc/self/mountinfo >/dev/null && touch /sys/kernel/uevent_helper "
        "2>/dev/null; mount | grep ' /sys ' | grep -q '(rw' && echo sys-rw",
        privileged=True,
    )
    lines = out.splitlines()
    assert lines[1] == "Seccomp:\t0"
    everything = sum(1 << oci.ALL_CAPABILITIES.index(c) for c in oci.privileged_capabilities())
    assert int(lines[0].split()[1], 16) == everything
    assert len(oci.privileged_capabilities()) > len(oci.DEFAULT_CAPABILITIES) + 20
    assert "dev" in lines and "sys-rw" in lines


@root_only
def test_exec_inherits_the_containers_confinement(manager, image):
    c = manager.create(
        ContainerSpec(image=image, cmd=["sleep", "60"], security_opt=["no-new-privileges"])
    )
    manager.start(c.id)
    try:
        with tempfile.TemporaryFile() as out:
            code = manager.exec(
                c.id,
                ["sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; " + ATTACK],
                stdout=out,
                stderr=out,
            )
            out.seek(0)
            text = out.read().decode()
        assert text.startswith("NoNewPrivs:\t1\nSeccomp:\t2\n") and "mounted" not in text
        assert code != 0
    finally:
        manager.remove(c.id, force=True)


@root_only
def test_a_build_run_step_is_confined(store_and_image, manager):
    from dockweb.runtime.build import BuildOptions, build

    store, image = store_and_image
    lines: list[str] = []
    result = build(
        store,
        manager,
        BuildOptions(
            dockerfile=(
                f"FROM {image}\n"
                "RUN grep '^Seccomp:' /proc/self/status\n"
                f"RUN {ATTACK} || echo refused\n"
            )
        ),
        on_output=lines.append,
    )
    out = "".join(lines)
    assert "\nSeccomp:\t2\n" in out and "\nrefused\n" in out and "\nmounted\n" not in out
    assert result.image_id


# -- the doors: docker's CLI through the Engine API, and dockweb's own ------------------------


@pytest.fixture(scope="module")
def api_image(engine_api, registry):
    return engine_api.pulled_busybox(registry, "confinement-api")


STATUS = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"


@root_only
def test_docker_run_with_security_options_through_the_engine_api(engine_api, api_image, tmp_path):
    docker = engine_api.docker
    proc = docker("run", "--rm", api_image, "sh", "-c", STATUS, check=True)
    assert proc.stdout == "NoNewPrivs:\t0\nSeccomp:\t2\n"
    proc = docker(
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        api_image,
        "sh",
        "-c",
        f"{STATUS}; {ATTACK}",
        check=True,
    )
    assert proc.stdout == "NoNewPrivs:\t0\nSeccomp:\t0\nmounted\n"
    proc = docker("run", "--rm", api_image, "sh", "-c", ATTACK)
    assert proc.returncode == 1 and "Operation not permitted" in proc.stderr
    proc = docker(
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        api_image,
        "sh",
        "-c",
        STATUS,
        check=True,
    )
    assert proc.stdout == "NoNewPrivs:\t1\nSeccomp:\t2\n"
    # a profile file: the docker client reads it and sends its JSON, compacted
    f = tmp_path / "p.json"
    f.write_text(
        '{\n "defaultAction": "SCMP_ACT_ALLOW",\n "syscalls": [\n'
        '  {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}\n'
    )
    docker(
        "create",
        "--name",
        "custom",
        "--security-opt",
        f"seccomp={f}",
        "--security-opt",
        "no-new-privileges:true",
        api_image,
        "mkdir",
        "/x",
        check=True,
    )
    info = json.loads(docker("inspect", "custom", check=True).stdout)[0]
    assert info["HostConfig"]["SecurityOpt"] == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],'
        '"action":"SCMP_ACT_ERRNO"}]}',
        "no-new-privileges:true",
    ]
    assert info["HostConfig"]["Privileged"] is False
    proc = docker("start", "-a", "custom")
    assert "mkdir: can't create directory '/x': Operation not permitted" in proc.stderr
    docker("rm", "custom", check=True)
    docker("create", "--name", "plain", api_image, check=True)
    plain = json.loads(docker("inspect", "plain", check=True).stdout)[0]
    assert plain["HostConfig"]["SecurityOpt"] is None
    assert plain["AppArmorProfile"] == ("docker-default" if apparmor.supported() else "")
    docker("rm", "plain", check=True)


@root_only
def test_docker_refuses_bad_security_options_with_dockerds_words(engine_api, api_image, tmp_path):
    docker = engine_api.docker
    proc = docker("run", "--rm", "--security-opt", "foo=bar", api_image, "true")
    assert (proc.returncode, proc.stderr) == (
        125,
        'docker: Error response from daemon: invalid --security-opt 2: "foo=bar".\n'
        "See 'docker run --help'.\n",
    )
    proc = docker("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", api_image, "true")
    assert proc.returncode == 125
    assert proc.stderr.startswith(
        "docker: opening seccomp profile (/nonexistent.json) failed: open /nonexistent.json: "
        "no such file or directory."
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": 1}')
    proc = docker("run", "--rm", "--security-opt", f"seccomp={bad}", api_image, "true")
    assert proc.returncode == 125
    assert proc.stderr == (
        "docker: Error response from daemon: Decoding seccomp profile failed: json: cannot "
        "unmarshal number into Go struct field Seccomp.defaultAction of type "
        "specs.LinuxSeccompAction.\n"
    )
    assert docker("ps", "-aq", check=True).stdout == ""  # --rm: none left behind


@root_only
def test_privileged_through_both_clis(engine_api, api_image):
    proc = engine_api.docker(
        "run", "--rm", "--privileged", api_image, "sh", "-c", STATUS, check=True
    )
    assert proc.stdout == "NoNewPrivs:\t0\nSeccomp:\t0\n"
    engine_api.docker("create", "--name", "priv", "--privileged", api_image, check=True)
    info = json.loads(engine_api.docker("inspect", "priv", check=True).stdout)[0]
    host = info["HostConfig"]
    assert (host["Privileged"], host["SecurityOpt"]) == (True, ["label=disable"])
    assert host["MaskedPaths"] is None and host["ReadonlyPaths"] is None
    engine_api.docker("rm", "priv", check=True)
    proc = engine_api.dockweb(
        "run", "--rm", "--privileged", api_image, "sh", "-c", STATUS, check=True
    )
    assert proc.stdout == "NoNewPrivs:\t0\nSeccomp:\t0\n"


@root_only
def test_dockweb_run_security_options(engine_api, api_image, tmp_path):
    dockweb = engine_api.dockweb
    proc = dockweb(
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges",
        api_image,
        "sh",
        "-c",
        STATUS,
        check=True,
    )
    assert proc.stdout == "NoNewPrivs:\t1\nSeccomp:\t0\n"
    proc = dockweb("run", "--rm", api_image, "sh", "-c", f"{STATUS}; {ATTACK}")
    assert proc.returncode == 1
    assert proc.stdout == "NoNewPrivs:\t0\nSeccomp:\t2\n"
    proc = dockweb("run", "--rm", "--security-opt", "nonsense", api_image, "true")
    assert (proc.returncode, proc.stderr) == (
        125,
        "dockweb: Invalid --security-opt: \"nonsense\".\nSee 'dockweb run --help'.\n",
    )
    proc = dockweb("run", "--rm", "--security-opt", f"seccomp={tmp_path}/none", api_image, "true")
    assert proc.returncode == 125
    assert (
        f"opening seccomp profile ({tmp_path}/none) failed: open {tmp_path}/none: no such "
        "file or directory" in proc.stderr
    )


@root_only
def test_the_engine_api_checks_security_opts_type(engine_api, api_image):
    from tests.support.engineapi import request

    for value, message in (
        (
            "seccomp=unconfined",
            "json: cannot unmarshal string into Go struct field "
            "HostConfig.SecurityOpt of type []string",
        ),
        (
            [1],
            "json: cannot unmarshal number into Go struct field HostConfig.SecurityOpt of "
            "type string",
        ),
    ):
        body = json.dumps({"Image": api_image, "HostConfig": {"SecurityOpt": value}}).encode()
        status, _, answer = request(
            engine_api,
            "POST",
            "/containers/create",
            body,
            {"Content-Type": "application/json"},
        )
        assert (status, json.loads(answer)["message"]) == (400, message)
