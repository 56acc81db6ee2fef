// share.h: the Share class over the in-memory FakeFs (layout, reads, listings, faults).
#include <doctest/doctest.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "fake_fs.h"
#include "helpers.h"
#include "hash.h"
#include "share.h"

using namespace nfsup;
using nfsup::test::FakeFs;

namespace {

const std::string kRoot = "/mnt/share";

HostStatus status_of(const std::string& host, const std::string& state = "running") {
  HostStatus s;
  s.host = host;
  s.state = state;
  s.running = "1.0";
  s.generation = 3;
  s.heartbeat = 10;
  s.mode = "daemon";
  return s;
}

// A share already initialized on `fs`.
Share make_share(FakeFs& fs) {
  fs.add_dir(kRoot);
  Share sh(fs, kRoot);
  auto s = sh.init();
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().msg));
  fs.clear_calls();
  return sh;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("Share over FakeFs: init creates the layout and check passes") {
  FakeFs fs;
  fs.add_dir("/mnt");
  Share sh(fs, kRoot);
  auto s = sh.init();
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().msg));
  for (const auto& d : {kRoot, kRoot + "/releases", kRoot + "/objects", kRoot + "/hosts", kRoot + "/audit"}) {
    CAPTURE(d);
    REQUIRE(fs.info(d).has_value());
    CHECK(fs.info(d)->type == FileInfo::Dir);
    CHECK(fs.info(d)->mode == 0755);
  }
  auto fmt_file = fs.content(kRoot + "/nfsup-share");
  REQUIRE(fmt_file.has_value());
  CHECK(starts_with(*fmt_file, "nfsup-share 1\ncreated "));
  CHECK(fs.info(kRoot + "/nfsup-share")->mode == 0644);
  CHECK(fs.count("write_atomic", kRoot + "/nfsup-share") == 1);
  CHECK(sh.check().ok());

  // Idempotent: a second init keeps the format file as it was.
  std::string before = *fmt_file;
  fs.advance_ms(5000);
  REQUIRE(sh.init().ok());
  CHECK(fs.content(kRoot + "/nfsup-share") == before);
  CHECK(fs.count("write_atomic", kRoot + "/nfsup-share") == 1);
}

TEST_CASE("Share over FakeFs: check on an empty directory is not an nfsup share") {
  FakeFs fs;
  fs.add_dir(kRoot);
  Share sh(fs, kRoot);
  auto s = sh.check();
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == Exit::Share);
  CHECK(s.error().msg == kRoot + ": not an nfsup share (no nfsup-share file; run 'nfsup-install init " + kRoot + "')");
  CHECK(contains(s.error().msg, "not an nfsup share"));

  // A format file of another kind or a newer version is an integrity problem, naming the file.
  fs.add_file(kRoot + "/nfsup-share", "nfsup-share 2\n");
  s = sh.check();
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == Exit::Integrity);
  CHECK(s.error().msg == kRoot + "/nfsup-share:1: format version 2 is newer than this nfsup understands (1)");
}

TEST_CASE("Share over FakeFs: markers are read, probed and garbled ones name the path") {
  FakeFs fs;
  Share sh = make_share(fs);
  auto none = sh.read_marker();
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  auto pnone = sh.probe_marker();
  REQUIRE(pnone.ok());
  CHECK_FALSE(pnone->has_value());
  CHECK(fs.count("probe", kRoot + "/MARKER") == 1);

  Marker m;
  m.generation = 4;
  m.release = "2.0";
  m.previous = "1.0";
  m.master_host = "build-7";
  m.nonce = "abc";
  fs.add_file(kRoot + "/MARKER", pack_marker(m));
  auto got = sh.probe_marker();
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->generation == 4);
  CHECK((*got)->release == "2.0");

  fs.add_file(kRoot + "/MARKER", "nfsup-marker 1\ngeneration 4\naction push\nrelease 2.0");  // truncated
  auto bad = sh.read_marker();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Exit::Integrity);
  CHECK(bad.error().msg == kRoot + "/MARKER: file is truncated (no final newline)");
  auto pbad = sh.probe_marker();
  REQUIRE_FALSE(pbad.ok());
  CHECK(pbad.error().code == Exit::Integrity);
  CHECK(pbad.error().msg == kRoot + "/MARKER: file is truncated (no final newline)");

  fs.add_file(kRoot + "/MARKER", std::string("\x00\x01garbage\n", 10));
  bad = sh.read_marker();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Exit::Integrity);
  CHECK(starts_with(bad.error().msg, kRoot + "/MARKER:1: "));

  fs.add_file(kRoot + "/MARKER", std::string(kSmallFileMax + 1, 'x'));
  bad = sh.read_marker();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Exit::Integrity);
  CHECK(bad.error().msg == kRoot + "/MARKER: file is larger than the 65536 byte limit");
}

TEST_CASE("Share over FakeFs: probe_marker fails when the share root is gone") {
  FakeFs fs;
  Share sh(fs, kRoot);  // never created
  auto r = sh.probe_marker();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Share);
  CHECK(r.error().msg == "probe(" + kRoot + "): No such file or directory");
}

TEST_CASE("Share over FakeFs: list_hosts ignores names that are not hosts") {
  FakeFs fs;
  Share sh = make_share(fs);
  for (const char* h : {"web-02", "db_1", "web-01", ".nfs0001", ".tmp.x", "..", "-x", "bad name"})
    fs.add_dir(kRoot + "/hosts/" + h);
  fs.add_file(kRoot + "/hosts/stray-file", "x");  // not a directory
  fs.add_file(kRoot + "/hosts/.nfs00000000000a", "silly rename");
  auto l = sh.list_hosts();
  REQUIRE(l.ok());
  CHECK(*l == std::vector<std::string>{"db_1", "web-01", "web-02"});
}

TEST_CASE("Share over FakeFs: list_releases ignores staging dirs and sorts by version") {
  FakeFs fs;
  Share sh = make_share(fs);
  for (const char* v : {"1.10", "1.9", "2.0.3", ".staging-2.1-build7-123", "1.0", "2.1.0", ".staging-x", "1.0.1"})
    fs.add_dir(kRoot + "/releases/" + v);
  fs.add_file(kRoot + "/releases/README", "not a release");
  auto l = sh.list_releases();
  REQUIRE(l.ok());
  CHECK(*l == std::vector<std::string>{"1.0", "1.0.1", "1.9", "1.10", "2.0.3", "2.1.0"});
}

TEST_CASE("Share over FakeFs: read_status checks the host field and fills mtime") {
  FakeFs fs;
  Share sh = make_share(fs);
  auto none = sh.read_status("web-01");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());

  fs.set_now_ms(1'800'000'000'123);
  REQUIRE(sh.write_status(status_of("web-01")).ok());
  auto got = sh.read_status("web-01");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->host == "web-01");
  CHECK((*got)->state == "running");
  CHECK((*got)->mtime_ms == 1'800'000'000'123);

  // web-01's directory holding a status that claims to be web-02.
  fs.add_file(sh.status_path("web-01"), pack_status(status_of("web-02")));
  auto bad = sh.read_status("web-01");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Exit::Integrity);
  CHECK(bad.error().msg == kRoot + "/hosts/web-01/status: names host 'web-02', not 'web-01'");

  fs.add_file(sh.status_path("web-01"), "nfsup-status 1\nhost web-01\nstate exploded\nrunning -\ngeneration 1\nheartbeat 1\n");
  bad = sh.read_status("web-01");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Exit::Integrity);
  CHECK(bad.error().msg == kRoot + "/hosts/web-01/status: state: unknown state 'exploded'");
}

TEST_CASE("Share over FakeFs: injected ESTALE/EIO on reads propagate as Exit::Share with the path") {
  FakeFs fs;
  Share sh = make_share(fs);
  REQUIRE(sh.write_status(status_of("web-01")).ok());
  Pointer p;
  p.generation = 1;
  p.release = "1.0";
  fs.add_file(kRoot + "/current", pack_pointer(p));

  fs.fail("read_file", kRoot + "/current", ESTALE);
  auto ptr = sh.read_pointer();
  REQUIRE_FALSE(ptr.ok());
  CHECK(ptr.error().code == Exit::Share);
  CHECK(ptr.error().msg == "read_file(" + kRoot + "/current): Stale file handle");

  fs.fail("read_file", kRoot + "/MARKER", EIO);
  auto mk = sh.read_marker();
  REQUIRE_FALSE(mk.ok());
  CHECK(mk.error().code == Exit::Share);
  CHECK(mk.error().msg == "read_file(" + kRoot + "/MARKER): Input/output error");

  fs.fail("probe", kRoot + "/MARKER", ETIMEDOUT);
  auto pm = sh.probe_marker();
  REQUIRE_FALSE(pm.ok());
  CHECK(pm.error().code == Exit::Share);
  CHECK(pm.error().msg == "probe(" + kRoot + "/MARKER): Connection timed out");

  fs.fail("*", sh.status_path("web-01"), EACCES);
  auto st = sh.read_status("web-01");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == Exit::Share);
  CHECK(st.error().msg == "read_file(" + kRoot + "/hosts/web-01/status): Permission denied");

  fs.fail("list_dir", kRoot + "/hosts", ESTALE);
  auto hosts = sh.list_hosts();
  REQUIRE_FALSE(hosts.ok());
  CHECK(hosts.error().code == Exit::Share);
  CHECK(hosts.error().msg == "list_dir(" + kRoot + "/hosts): Stale file handle");

  fs.fail("read_file", kRoot + "/nfsup-share", EIO);
  auto chk = sh.check();
  REQUIRE_FALSE(chk.ok());
  CHECK(chk.error().code == Exit::Share);
  CHECK(chk.error().msg == "read_file(" + kRoot + "/nfsup-share): Input/output error");

  // Once the server recovers, the same reads work again.
  fs.clear_failures();
  CHECK(sh.read_pointer().ok());
  CHECK(sh.read_status("web-01").ok());
  CHECK(sh.check().ok());
}

TEST_CASE("Share over FakeFs: a one-shot fault affects only the next call") {
  FakeFs fs;
  Share sh = make_share(fs);
  fs.fail("read_file", kRoot + "/current", ESTALE, 1);
  CHECK_FALSE(sh.read_pointer().ok());
  auto again = sh.read_pointer();
  REQUIRE(again.ok());
  CHECK_FALSE(again->has_value());
  CHECK(fs.count("read_file", kRoot + "/current") == 2);
}

TEST_CASE("Share over FakeFs: write_status under ENOSPC fails and leaves no file") {
  FakeFs fs;
  Share sh = make_share(fs);
  fs.fail("write_atomic", sh.status_path("web-01"), ENOSPC);
  auto s = sh.write_status(status_of("web-01"));
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == Exit::Share);
  CHECK(s.error().msg == "write_atomic(" + kRoot + "/hosts/web-01/status): No space left on device");
  CHECK_FALSE(fs.exists(sh.status_path("web-01")));
  // Nothing else was left behind in the host directory either (no temp files).
  for (const auto& p : fs.paths()) CHECK_FALSE(starts_with(p, kRoot + "/hosts/web-01/"));
  auto r = sh.read_status("web-01");
  REQUIRE(r.ok());
  CHECK_FALSE(r->has_value());

  // An earlier status survives a failed rewrite byte for byte.
  fs.clear_failures();
  REQUIRE(sh.write_status(status_of("web-01", "running")).ok());
  std::string before = *fs.content(sh.status_path("web-01"));
  fs.fail("write_atomic", sh.status_path("web-01"), ENOSPC);
  CHECK_FALSE(sh.write_status(status_of("web-01", "stopped")).ok());
  CHECK(fs.content(sh.status_path("web-01")) == before);
}

TEST_CASE("Share over FakeFs: write_status fails when the host directory cannot be created") {
  FakeFs fs;
  Share sh = make_share(fs);
  fs.fail("mkdir", sh.host_dir("web-01"), EACCES);
  auto s = sh.write_status(status_of("web-01"));
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().msg == "mkdir(" + kRoot + "/hosts/web-01): Permission denied");
  CHECK(fs.count("write_atomic") == 0);
}

TEST_CASE("Share over FakeFs: read_manifest checks the version and verify_release reports problems") {
  FakeFs fs;
  Share sh = make_share(fs);
  auto hostile = sh.read_manifest("../x");
  REQUIRE_FALSE(hostile.ok());
  CHECK(hostile.error().code == Exit::Usage);
  CHECK(fs.count("read_file") == 0);  // never touched the share

  Manifest m;
  m.version = "2.0";
  m.entries = {
      {ManifestEntry::Dir, "bin", 0755, 0, "", ""},
      {ManifestEntry::File, "bin/agent", 0755, 3, sha256_hex("abc"), ""},
      {ManifestEntry::Symlink, "bin/link", 0, 0, "", "agent"},
      {ManifestEntry::File, "etc/missing", 0644, 1, sha256_hex("x"), ""},
      {ManifestEntry::Dir, "var", 0755, 0, "", ""},
  };
  fs.add_file(sh.manifest_path("1.0"), pack_manifest(m));  // filed under the wrong version
  auto wrong = sh.read_manifest("1.0");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == Exit::Integrity);
  CHECK(wrong.error().msg == kRoot + "/releases/1.0/.nfsup/manifest: manifest is for version '2.0', not '1.0'");

  auto absent = sh.verify_release("3.0");
  REQUIRE(absent.ok());
  CHECK(*absent == std::vector<std::string>{kRoot + "/releases/3.0/.nfsup/manifest: manifest missing"});

  std::string rd = sh.release_dir("2.0");
  fs.add_file(sh.manifest_path("2.0"), pack_manifest(m));
  auto probs = sh.verify_release("2.0");
  REQUIRE(probs.ok());
  CHECK(*probs == std::vector<std::string>{rd + "/bin: missing", rd + "/bin/agent: missing", rd + "/bin/link: missing",
                                           rd + "/etc/missing: missing", rd + "/var: missing"});

  fs.add_dir(rd + "/bin");
  fs.add_file(rd + "/bin/agent", "abcd", 0775);  // wrong size, group-writable
  fs.add_file(rd + "/bin/link", "agent");        // a file, not a symlink
  fs.add_dir(rd + "/etc/missing");
  fs.add_file(rd + "/var", "a file where a dir should be");
  probs = sh.verify_release("2.0");
  REQUIRE(probs.ok());
  CHECK(*probs == std::vector<std::string>{rd + "/bin/agent: group/world-writable (mode 775)",
                                           rd + "/bin/agent: size 4 != manifest 3", rd + "/bin/link: not a symlink",
                                           rd + "/etc/missing: not a regular file", rd + "/var: not a directory"});

  fs.remove(rd + "/bin/link");
  fs.add_symlink(rd + "/bin/link", "agent");
  fs.remove(rd + "/etc");
  fs.remove(rd + "/var");
  fs.add_dir(rd + "/var");
  fs.remove(rd + "/bin/agent");
  fs.add_file(rd + "/bin/agent", "abc", 0755);
  fs.add_file(rd + "/etc/missing", "x", 0644);
  // (Sizes now match, so verify_release would hash the files: it does that with hash_file() on the
  // real path, outside FileSystem, so the hash step is covered by the RealFs test below.)
  CHECK(fs.info(rd + "/bin/link")->type == FileInfo::Symlink);

  fs.fail("stat", rd + "/bin", EIO);
  auto failed = sh.verify_release("2.0");
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code == Exit::Share);
  CHECK(failed.error().msg == "stat(" + rd + "/bin): Input/output error");
}

TEST_CASE("Share over FakeFs: audit publishes one new file per event") {
  FakeFs fs;
  Share sh = make_share(fs);
  REQUIRE(sh.audit("push", "1.0 -> 2.0", "ok").ok());
  auto l = fs.list_dir(sh.audit_dir());
  REQUIRE(l.ok());
  REQUIRE(l->size() == 1);
  CHECK((*l)[0].name.find(':') == std::string::npos);
  CHECK((*l)[0].name.size() > 5);
  CHECK((*l)[0].name.substr((*l)[0].name.size() - 5) == "-push");
  auto text = fs.content(path_join(sh.audit_dir(), (*l)[0].name));
  REQUIRE(text.has_value());
  auto rec = unpack_record(*text, "audit", 1, "audit");
  REQUIRE(rec.ok());
  RecordReader rd(*rec, "audit");
  CHECK(rd.str_or("detail", "") == "1.0 -> 2.0");
  CHECK(rd.str_or("result", "") == "ok");
  CHECK(fs.count("publish_new") == 1);

  fs.fail("publish_new", sh.audit_dir() + "/*", ENOSPC);
  auto s = sh.audit("push", "x", "ok");
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == Exit::Share);
  CHECK(contains(s.error().msg, "No space left on device"));
}

TEST_CASE("Share over RealFs: verify_release detects a tampered file by its hash") {
  nfsup::test::TempDir tmp;
  RealFs fs("unit");
  Share sh(fs, tmp.path());
  REQUIRE(sh.init().ok());
  std::string rd = sh.release_dir("2.0");
  REQUIRE(fs.mkdir(rd, 0755).ok());
  REQUIRE(fs.mkdir(rd + "/.nfsup", 0755).ok());
  REQUIRE(fs.mkdir(rd + "/bin", 0755).ok());
  REQUIRE(fs.write_atomic(rd + "/bin/agent", "abc", 0755).ok());
  Manifest m;
  m.version = "2.0";
  m.entries = {{ManifestEntry::Dir, "bin", 0755, 0, "", ""},
               {ManifestEntry::File, "bin/agent", 0755, 3, sha256_hex("abc"), ""}};
  REQUIRE(fs.write_atomic(sh.manifest_path("2.0"), pack_manifest(m), 0644).ok());
  auto ok = sh.verify_release("2.0");
  REQUIRE(ok.ok());
  CHECK(ok->empty());

  REQUIRE(fs.write_atomic(rd + "/bin/agent", "abd", 0755).ok());  // same size, other content
  auto bad = sh.verify_release("2.0");
  REQUIRE(bad.ok());
  CHECK(*bad == std::vector<std::string>{rd + "/bin/agent: sha256 " + sha256_hex("abd").substr(0, 16) +
                                         " != manifest " + sha256_hex("abc").substr(0, 16)});
}

TEST_CASE("Share over FakeFs: verify_release names every entry the manifest does not list") {
  FakeFs fs;
  Share sh = make_share(fs);
  Manifest m;
  m.version = "2.0";
  m.entries = {{ManifestEntry::Dir, "bin", 0755, 0, "", ""},
               {ManifestEntry::Dir, "lib/x", 0755, 0, "", ""}};
  m.modules = {ModuleInfo{"core", "2.0", sha256_hex("core"), 0, {"bin"}, {}, {}, {}},
               ModuleInfo{"lib", "2.0", sha256_hex("lib"), 0, {"lib"}, {}, {}, {}}};
  m.classes = {ClassInfo{"web", {"core"}, {}}};
  std::string rd = sh.release_dir("2.0");
  fs.add_file(sh.manifest_path("2.0"), pack_manifest(m));
  fs.add_file(sh.manifest_sig_path("2.0"), "sigs");
  fs.add_dir(rd + "/bin");
  fs.add_dir(rd + "/lib/x");
  fs.add_dir(rd + "/.nfsup/class/web/bin");
  auto clean = sh.verify_release("2.0");
  REQUIRE_MESSAGE(clean.ok(), (clean.ok() ? "" : clean.error().msg));
  CHECK(clean->empty());

  fs.add_file(rd + "/bin/healthcheck", "#!/bin/sh\n", 0755);   // planted beside listed files
  fs.add_file(rd + "/extra/deep/file", "x");                  // an unlisted tree: named once
  fs.add_file(rd + "/.nfsup/reconfig", "#!/bin/sh\n", 0755);  // nfsup's own directory is not a hiding place
  fs.add_file(rd + "/.nfsup/class/web/bin/run", "x");         // nor a class tree
  fs.add_dir(rd + "/.nfsup/class/db");                        // a class the manifest does not have
  auto probs = sh.verify_release("2.0");
  REQUIRE(probs.ok());
  auto sorted = *probs;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::string>{rd + "/.nfsup/class/db: not in the manifest",
                                           rd + "/.nfsup/class/web/bin/run: not in the manifest",
                                           rd + "/.nfsup/reconfig: not in the manifest",
                                           rd + "/bin/healthcheck: not in the manifest",
                                           rd + "/extra: not in the manifest"});
  // A host of class web checks its own tree only.
  auto web = sh.verify_release("2.0", "web");
  REQUIRE(web.ok());
  CHECK(*web == std::vector<std::string>{rd + "/.nfsup/class/web/bin/run: not in the manifest"});
}

TEST_CASE("RealFs: a FIFO where a share file should be is refused at once, never opened for a blocking read") {
  nfsup::test::TempDir tmp;
  RealFs fs("unit");
  std::string fifo = tmp.path() + "/MARKER";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  auto r = fs.read_file(fifo, 1024);  // (would block forever without O_NONBLOCK: no writer)
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Integrity);
  CHECK(r.error().msg == fifo + ": not a regular file");
  auto p = fs.probe(tmp.path(), "MARKER", 1024);
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().msg == fifo + ": not a regular file");
  CHECK_FALSE(certainly_absent(tmp.path().c_str(), "MARKER"));
  auto h = hash_file(fifo);
  REQUIRE_FALSE(h.ok());
  CHECK(h.error().code == Exit::Integrity);
  REQUIRE(::symlink("MARKER", (tmp.path() + "/current").c_str()) == 0);
  auto l = fs.read_file(tmp.path() + "/current", 1024);
  REQUIRE_FALSE(l.ok());
  CHECK(l.error().code == Exit::Integrity);
}
