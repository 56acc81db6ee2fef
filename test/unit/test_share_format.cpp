// share.h: pack/unpack of MARKER, current, status and manifest, and rejection of tampered files.
#include <doctest/doctest.h>

#include "hash.h"
#include "share.h"

using namespace nfsup;

namespace {

const char* kMarker = "/share/MARKER";
const char* kPointer = "/share/current";
const char* kStatus = "/share/hosts/web-01/status";
const char* kManifest = "/share/releases/2.0/.nfsup/manifest";

Marker sample_marker() {
  Marker m;
  m.generation = 42;
  m.action = "rollback";
  m.release = "1.9";
  m.previous = "1.10";
  m.master_host = "build-7";
  m.master_pid = 31337;
  m.nonce = "00c0ffee12345678";
  m.lease_ms = 15000;
  m.renewal = 9;
  m.started = "2024-05-01T10:00:00Z";
  m.strategy = "all-at-once";
  return m;
}

std::string manifest_header(const std::string& reconfig = "-") {
  return "nfsup-manifest 1\nversion 2.0\ncreated 2024-05-01T10:00:00Z\ncreated_by build-7\nreconfig " + reconfig +
         "\n";
}

std::string file_line(const std::string& path, const std::string& mode = "755", const std::string& sha = "") {
  return "file " + path + " " + mode + " 3 " + (sha.empty() ? sha256_hex("abc") : sha) + "\n";
}

// The error message of a failed unpack_manifest ("" if it was accepted).
std::string manifest_error(const std::string& text) {
  auto r = unpack_manifest(text, kManifest);
  if (r) return "";
  CHECK(r.error().code == Exit::Integrity);
  return r.error().msg;
}

}  // namespace

TEST_CASE("share format: Marker pack/unpack round trip") {
  Marker m = sample_marker();
  auto back = unpack_marker(pack_marker(m), kMarker);
  REQUIRE(back.ok());
  CHECK(back->generation == 42);
  CHECK(back->action == "rollback");
  CHECK(back->release == "1.9");
  CHECK(back->previous == "1.10");
  CHECK(back->master_host == "build-7");
  CHECK(back->master_pid == 31337);
  CHECK(back->nonce == "00c0ffee12345678");
  CHECK(back->lease_ms == 15000);
  CHECK(back->renewal == 9);
  CHECK(back->started == "2024-05-01T10:00:00Z");
  CHECK(back->strategy == "all-at-once");

  // Empty optional fields survive as empty (stored as "-").
  m.previous.clear();
  m.started.clear();
  std::string text = pack_marker(m);
  CHECK(text.find("\nprevious -\n") != std::string::npos);
  auto back2 = unpack_marker(text, kMarker);
  REQUIRE(back2.ok());
  CHECK(back2->previous == "");
  CHECK(back2->started == "");
}

TEST_CASE("share format: Pointer pack/unpack round trip") {
  Pointer p;
  p.generation = 7;
  p.release = "2.0.3";
  p.previous = "2.0.2";
  p.action = "push";
  p.updated = "2024-05-01T10:00:00Z";
  p.updated_by = "build-7";
  std::string text = pack_pointer(p);
  CHECK(text.rfind("nfsup-current 1\ngeneration 7\nrelease 2.0.3\n", 0) == 0);
  auto back = unpack_pointer(text, kPointer);
  REQUIRE(back.ok());
  CHECK(back->generation == 7);
  CHECK(back->release == "2.0.3");
  CHECK(back->previous == "2.0.2");
  CHECK(back->action == "push");
  CHECK(back->updated == "2024-05-01T10:00:00Z");
  CHECK(back->updated_by == "build-7");

  p.previous.clear();
  auto back2 = unpack_pointer(pack_pointer(p), kPointer);
  REQUIRE(back2.ok());
  CHECK(back2->previous == "");
}

TEST_CASE("share format: HostStatus pack/unpack round trip") {
  HostStatus s;
  s.host = "web-01";
  s.state = "stopped";
  s.running = "1.0";
  s.generation = 12;
  s.heartbeat = 345;
  s.pid = 1000;
  s.agent_pid = 1001;
  s.mode = "check";
  s.reason = "push to 2.0 in progress (generation 12)\nsecond line";
  s.updated = "2024-05-01T10:00:00Z";
  s.mtime_ms = 999;
  auto back = unpack_status(pack_status(s), kStatus);
  REQUIRE(back.ok());
  CHECK(back->host == "web-01");
  CHECK(back->state == "stopped");
  CHECK(back->running == "1.0");
  CHECK(back->generation == 12);
  CHECK(back->heartbeat == 345);
  CHECK(back->pid == 1000);
  CHECK(back->agent_pid == 1001);
  CHECK(back->mode == "check");
  CHECK(back->reason == s.reason);
  CHECK(back->updated == "2024-05-01T10:00:00Z");
  CHECK(back->mtime_ms == 0);  // not stored; readers fill it from stat
  CHECK(back->poll_ms == 0);   // not reported: the master paces itself by its own default
  CHECK(back->checks.empty()); // not reported: the master asks this host to vote
  s.poll_ms = 200;
  s.checks = "no";
  auto b2 = unpack_status(pack_status(s), kStatus);
  REQUIRE(b2.ok());
  CHECK(b2->poll_ms == 200);
  CHECK(b2->checks == "no");
  s.checks = "yes";
  CHECK(unpack_status(pack_status(s), kStatus)->checks == "yes");
  s.checks = "maybe";
  auto bad = unpack_status(pack_status(s), kStatus);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().msg.find("checks") != std::string::npos);
  s.checks.clear();
  s.poll_ms = 0;

  for (const char* st : {"idle", "starting", "running", "stopping", "stopped", "failed"}) {
    CAPTURE(st);
    s.state = st;
    s.running.clear();
    auto b = unpack_status(pack_status(s), kStatus);
    REQUIRE(b.ok());
    CHECK(b->state == st);
    CHECK(b->running == "");
  }

  // Over-long reasons are cut to 1024 bytes, not rejected.
  s.state = "failed";
  s.reason = std::string(5000, 'r');
  auto cut = unpack_status(pack_status(s), kStatus);
  REQUIRE(cut.ok());
  CHECK(cut->reason.size() == 1024);
}

TEST_CASE("share format: Manifest pack/unpack round trip") {
  Manifest m;
  m.version = "2.0";
  m.created = "2024-05-01T10:00:00Z";
  m.created_by = "build-7";
  m.reconfig = ".nfsup/reconfig";
  ManifestEntry d{ManifestEntry::Dir, "bin", 0755, 0, "", ""};
  ManifestEntry f{ManifestEntry::File, "bin/agent", 0755, 3, sha256_hex("abc"), ""};
  ManifestEntry sp{ManifestEntry::File, "docs/read me.txt", 0644, 11, sha256_hex("hello world"), ""};
  ManifestEntry l{ManifestEntry::Symlink, "bin/current", 0, 0, "", "agent"};
  ManifestEntry up{ManifestEntry::Symlink, "docs/bin", 0, 0, "", "../bin"};
  ManifestEntry rc{ManifestEntry::File, ".nfsup/reconfig", 0700, 3, sha256_hex("abc"), ""};
  m.entries = {d, f, sp, l, up, rc};
  auto back = unpack_manifest(pack_manifest(m), kManifest);
  REQUIRE(back.ok());
  CHECK(back->version == "2.0");
  CHECK(back->created == "2024-05-01T10:00:00Z");
  CHECK(back->created_by == "build-7");
  CHECK(back->reconfig == ".nfsup/reconfig");
  REQUIRE(back->entries.size() == 6);
  for (size_t i = 0; i < m.entries.size(); ++i) {
    CAPTURE(i);
    CHECK(back->entries[i].kind == m.entries[i].kind);
    CHECK(back->entries[i].path == m.entries[i].path);
    CHECK(back->entries[i].mode == m.entries[i].mode);
    CHECK(back->entries[i].size == m.entries[i].size);
    CHECK(back->entries[i].sha256 == m.entries[i].sha256);
    CHECK(back->entries[i].target == m.entries[i].target);
  }
  CHECK(back->total_bytes() == 17);

  m.reconfig.clear();
  auto back2 = unpack_manifest(pack_manifest(m), kManifest);
  REQUIRE(back2.ok());
  CHECK(back2->reconfig == "");
}

TEST_CASE("share format: tampered manifests are rejected naming the file and line") {
  // Sanity: the building blocks are accepted.
  CHECK(manifest_error(manifest_header() + file_line("bin/agent")) == "");

  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "755", std::string(64, 'g'))) ==
        std::string(kManifest) + ":6: bad sha256");
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "755", sha256_hex("abc").substr(1))) ==
        std::string(kManifest) + ":6: bad sha256");
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "755", "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")) ==
        std::string(kManifest) + ":6: bad sha256");
  const std::string bad_mode = ":6: bad mode (must be octal, not group/world-writable, no setuid)";
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "775")) == kManifest + bad_mode);
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "757")) == kManifest + bad_mode);
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "4755")) == kManifest + bad_mode);
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "2755")) == kManifest + bad_mode);
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "1755")) == kManifest + bad_mode);
  CHECK(manifest_error(manifest_header() + file_line("bin/agent", "789")) == kManifest + bad_mode);
  CHECK(manifest_error(manifest_header() + "dir bin 775\n") == std::string(kManifest) + ":6: bad mode");
  CHECK(manifest_error(manifest_header() + "file bin/agent 755 -3 " + sha256_hex("abc") + "\n") ==
        std::string(kManifest) + ":6: bad size");
  CHECK(manifest_error(manifest_header() + "file bin/agent 755 3\n") ==
        std::string(kManifest) + ":6: file needs: path mode size sha256");

  // Symlinks must resolve inside the release.
  CHECK(manifest_error(manifest_header() + "symlink a ../../x\n") ==
        std::string(kManifest) + ":6: symlink 'a' points outside the release");
  CHECK(manifest_error(manifest_header() + "symlink a ../x\n") ==
        std::string(kManifest) + ":6: symlink 'a' points outside the release");
  CHECK(manifest_error(manifest_header() + "symlink d/a ../../x\n") ==
        std::string(kManifest) + ":6: symlink 'd/a' points outside the release");
  CHECK(manifest_error(manifest_header() + "symlink d/a x/../../../y\n") ==
        std::string(kManifest) + ":6: symlink 'd/a' points outside the release");
  CHECK(manifest_error(manifest_header() + "symlink a /etc/passwd\n") ==
        std::string(kManifest) + ":6: symlink target must be relative");
  CHECK(manifest_error(manifest_header() + "symlink d/e/a ../../x\n") == "");  // ends at <release>/x
  CHECK(manifest_error(manifest_header() + "symlink d/a ./x/../y\n") == "");

  // Paths: hostile, and duplicated (even with another kind).
  CHECK(manifest_error(manifest_header() + file_line("../etc/passwd")) ==
        std::string(kManifest) + ":6: path '../etc/passwd' contains '..'");
  CHECK(manifest_error(manifest_header() + file_line("/etc/passwd")) ==
        std::string(kManifest) + ":6: absolute path '/etc/passwd'");
  CHECK(manifest_error(manifest_header() + file_line("bin/agent") + file_line("bin/agent")) ==
        std::string(kManifest) + ":7: path 'bin/agent' listed twice");
  CHECK(manifest_error(manifest_header() + "dir bin 755\n" + "symlink bin agent\n") ==
        std::string(kManifest) + ":7: path 'bin' listed twice");

  // The reconfig script must be listed, as a file.
  CHECK(manifest_error(manifest_header(".nfsup/reconfig") + file_line("bin/agent")) ==
        std::string(kManifest) + ": reconfig: script is not listed as a file");
  CHECK(manifest_error(manifest_header(".nfsup/reconfig") + "dir .nfsup/reconfig 755\n") ==
        std::string(kManifest) + ": reconfig: script is not listed as a file");
  CHECK(manifest_error(manifest_header(".nfsup/reconfig") + "symlink .nfsup/reconfig ../bin/agent\n") ==
        std::string(kManifest) + ": reconfig: script is not listed as a file");
  CHECK(manifest_error(manifest_header("../reconfig")) == std::string(kManifest) + ": reconfig: path '../reconfig' contains '..'");
  CHECK(manifest_error(manifest_header(".nfsup/reconfig") + file_line(".nfsup/reconfig", "700")) == "");

  // Header fields.
  CHECK(manifest_error("nfsup-manifest 1\nversion ../x\n") ==
        std::string(kManifest) + ": version: version '../x' must start with a letter or digit");
  CHECK(manifest_error("nfsup-manifest 1\nversion 1\nversion 2\n") ==
        std::string(kManifest) + ":3: key 'version' appears more than once");
  CHECK(manifest_error("nfsup-marker 1\nversion 1\n") ==
        std::string(kManifest) + ":1: not an nfsup manifest file (first line must be 'nfsup-manifest <version>')");
}

TEST_CASE("share format: tampered status is rejected naming the file") {
  HostStatus s;
  s.host = "web-01";
  s.state = "zombie";
  s.mode = "daemon";
  auto r = unpack_status(pack_status(s), kStatus);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Integrity);
  CHECK(r.error().msg == std::string(kStatus) + ": state: unknown state 'zombie'");

  s.state = "running";
  s.host = "../web-02";
  r = unpack_status(pack_status(s), kStatus);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == std::string(kStatus) + ": host: host name '../web-02' must start with a letter or digit");

  s.host = "web-01";
  s.running = "1.0/../../x";
  r = unpack_status(pack_status(s), kStatus);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg ==
        std::string(kStatus) + ": running: version '1.0/../../x' contains '/' (allowed: letters, digits and ._+-)");

  r = unpack_status("nfsup-status 1\nhost web-01\nstate running\nrunning -\ngeneration x\nheartbeat 1\n", kStatus);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == std::string(kStatus) + ":5: key 'generation' is not an integer");

  r = unpack_status("nfsup-status 1\nhost web-01\nstate running\nrunning -\ngeneration 1\n", kStatus);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == std::string(kStatus) + ": missing key 'heartbeat'");
}

TEST_CASE("share format: tampered marker is rejected naming the file") {
  auto expect = [](const Marker& m, const std::string& msg) {
    auto r = unpack_marker(pack_marker(m), kMarker);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Exit::Integrity);
    CHECK(r.error().msg == msg);
  };
  Marker m = sample_marker();
  m.action = "deploy";
  expect(m, std::string(kMarker) + ": action: must be push or rollback");
  m = sample_marker();
  m.release = "../../etc";
  expect(m, std::string(kMarker) + ": release: version '../../etc' must start with a letter or digit");
  m.release = "1.0 && rm -rf";
  expect(m, std::string(kMarker) + ": release: version '1.0 && rm -rf' contains ' ' (allowed: letters, digits and ._+-)");
  m = sample_marker();
  m.previous = "a/../b";
  expect(m, std::string(kMarker) + ": previous: version 'a/../b' contains '/' (allowed: letters, digits and ._+-)");
  m = sample_marker();
  m.master_host = ".nfs0001";
  expect(m, std::string(kMarker) + ": master_host: host name '.nfs0001' must start with a letter or digit");
  m = sample_marker();
  m.generation = 0;
  expect(m, std::string(kMarker) + ": generation: must be positive");
  m = sample_marker();
  m.lease_ms = 99;
  expect(m, std::string(kMarker) + ": lease_ms: out of range");
  m.lease_ms = 24LL * 3600 * 1000 + 1;
  expect(m, std::string(kMarker) + ": lease_ms: out of range");

  auto r = unpack_marker("nfsup-marker 1\ngeneration 1\n", kMarker);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == std::string(kMarker) + ": missing key 'action'");
}

TEST_CASE("share format: tampered pointer is rejected naming the file") {
  Pointer p;
  p.generation = 3;
  p.release = "../x";
  auto r = unpack_pointer(pack_pointer(p), kPointer);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Integrity);
  CHECK(r.error().msg == std::string(kPointer) + ": release: version '../x' must start with a letter or digit");
  p.release = "1.0";
  p.generation = -1;
  r = unpack_pointer(pack_pointer(p), kPointer);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == std::string(kPointer) + ": generation: must be positive");
  r = unpack_pointer(pack_marker(sample_marker()), kPointer);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg ==
        std::string(kPointer) + ":1: not an nfsup current file (first line must be 'nfsup-current <version>')");
}

TEST_CASE("share format: object_name encodes hash and octal mode") {
  std::string h = sha256_hex("abc");
  CHECK(h == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(object_name(h, 0755) == h + ".755");
  CHECK(object_name(h, 0644) == h + ".644");
  CHECK(is_sha256_hex(h));
  CHECK_FALSE(is_sha256_hex(h.substr(1)));
}

TEST_CASE("share format: a status says where the host runs its agent from (run_from, issue 17)") {
  HostStatus s;
  s.host = "web-01";
  s.state = "running";
  s.mode = "daemon";
  auto none = unpack_status(pack_status(s), kStatus);
  REQUIRE(none.ok());
  CHECK(none->run_from == "");  // an older watchdog: not reported
  for (const char* w : {"local", "share"}) {
    s.run_from = w;
    auto r = unpack_status(pack_status(s), kStatus);
    REQUIRE(r.ok());
    CHECK(r->run_from == w);
  }
  s.run_from = "nfs";
  auto bad = unpack_status(pack_status(s), kStatus);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().msg == std::string(kStatus) + ": run_from: must be local or share");
}
