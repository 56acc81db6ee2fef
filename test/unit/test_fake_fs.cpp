// The FakeFs itself: same observable semantics as RealFs, plus clock, call log and fault injection.
#include <doctest/doctest.h>
#include <errno.h>
#include <string.h>

#include <algorithm>
#include <functional>

#include "fake_fs.h"
#include "helpers.h"

using namespace nfsup;
using nfsup::test::FakeFs;

namespace {

// One observable outcome of a FileSystem call, comparable across implementations.
struct Outcome {
  bool ok = false;
  Exit code = Exit::Ok;
  std::string value;  // rendered result
  bool operator==(const Outcome& o) const { return ok == o.ok && code == o.code && value == o.value; }
};

std::string show(const Outcome& o) {
  return o.ok ? "ok:" + o.value : "err:" + std::to_string(static_cast<int>(o.code));
}

template <typename T>
Outcome outcome(const Result<T>& r, const std::function<std::string(const T&)>& render) {
  if (!r) return Outcome{false, r.error().code, ""};
  return Outcome{true, Exit::Ok, render(r.value())};
}

std::string render_opt(const std::optional<std::string>& s) { return s ? "'" + *s + "'" : "none"; }
std::string render_unit(const Unit&) { return ""; }
std::string render_bool(const bool& b) { return b ? "true" : "false"; }
std::string render_info(const std::optional<FileInfo>& fi) {
  if (!fi) return "none";
  std::string t = fi->type == FileInfo::File ? "file" : fi->type == FileInfo::Dir ? "dir" : "other";
  // Directory modes depend on the umask on a real disk; file modes are set with fchmod.
  return t + " size=" + (fi->type == FileInfo::File ? std::to_string(fi->size) : "-") +
         (fi->type == FileInfo::File ? " mode=" + std::to_string(fi->mode) : "");
}
std::string render_list(const std::vector<DirEntry>& l) {
  std::vector<std::string> v;
  for (const auto& e : l) v.push_back(e.name + (e.type == FileInfo::Dir ? "/" : ""));
  std::sort(v.begin(), v.end());
  return join(v, ",");
}

// Runs the same script on a FileSystem rooted at `root` and returns every outcome.
std::vector<Outcome> script(FileSystem& fs, const std::string& root) {
  std::vector<Outcome> out;
  auto P = [&](const std::string& rel) { return root + "/" + rel; };
  auto rd = [&](const std::string& rel, size_t max = 1024) {
    out.push_back(outcome<std::optional<std::string>>(fs.read_file(P(rel), max), render_opt));
  };
  auto st = [&](const std::string& rel) {
    out.push_back(outcome<std::optional<FileInfo>>(fs.stat(P(rel)), render_info));
  };
  rd("a");
  out.push_back(outcome<Unit>(fs.write_atomic(P("a"), "x", 0644), render_unit));
  rd("a");
  out.push_back(outcome<bool>(fs.publish_new(P("a"), "y", 0644), render_bool));
  rd("a");
  out.push_back(outcome<bool>(fs.publish_new(P("b"), "yy", 0600), render_bool));
  st("b");
  out.push_back(outcome<Unit>(fs.write_atomic(P("missing/c"), "z", 0644), render_unit));
  out.push_back(outcome<bool>(fs.publish_new(P("missing/c"), "z", 0644), render_bool));
  out.push_back(outcome<Unit>(fs.mkdir(P("d"), 0755), render_unit));
  out.push_back(outcome<Unit>(fs.mkdir(P("d"), 0755), render_unit));
  out.push_back(outcome<Unit>(fs.mkdir(P("no/such"), 0755), render_unit));
  out.push_back(outcome<std::vector<DirEntry>>(fs.list_dir(root), render_list));
  out.push_back(outcome<std::vector<DirEntry>>(fs.list_dir(P("nodir")), render_list));
  out.push_back(outcome<std::vector<DirEntry>>(fs.list_dir(P("a")), render_list));
  st("a");
  st("d");
  st("nope");
  st("a/b");  // a is a file: ENOTDIR is an error, not "absent"
  rd("a/b");
  rd("d");    // a directory
  out.push_back(outcome<Unit>(fs.write_atomic(P("big"), std::string(2000, 'b'), 0644), render_unit));
  rd("big", 1999);
  rd("big", 2000);
  out.push_back(outcome<std::optional<std::string>>(fs.probe(root, "a", 1024), render_opt));
  out.push_back(outcome<std::optional<std::string>>(fs.probe(root, "zz", 1024), render_opt));
  out.push_back(outcome<std::optional<std::string>>(fs.probe(P("nodir"), "a", 1024), render_opt));
  out.push_back(outcome<std::optional<std::string>>(fs.probe(P("a"), "x", 1024), render_opt));
  out.push_back(outcome<Unit>(fs.rename(P("a"), P("e")), render_unit));
  rd("a");
  rd("e");
  out.push_back(outcome<Unit>(fs.rename(P("a"), P("f")), render_unit));  // source gone
  out.push_back(outcome<Unit>(fs.write_atomic(P("d/inner"), "i", 0644), render_unit));
  out.push_back(outcome<Unit>(fs.rename(P("d"), P("d2")), render_unit));  // moves the subtree
  rd("d2/inner");
  rd("d/inner");
  out.push_back(outcome<Unit>(fs.write_atomic(P("d2"), "over a dir", 0644), render_unit));
  out.push_back(outcome<Unit>(fs.rmdir(P("d2")), render_unit));  // not empty
  out.push_back(outcome<bool>(fs.unlink(P("d2")), render_bool));  // a directory
  out.push_back(outcome<bool>(fs.unlink(P("d2/inner")), render_bool));
  out.push_back(outcome<bool>(fs.unlink(P("d2/inner")), render_bool));
  out.push_back(outcome<Unit>(fs.rmdir(P("d2")), render_unit));
  out.push_back(outcome<Unit>(fs.rmdir(P("d2")), render_unit));  // already gone is fine
  out.push_back(outcome<Unit>(fs.rmdir(P("e")), render_unit));   // a file
  out.push_back(outcome<bool>(fs.unlink(P("e")), render_bool));
  out.push_back(outcome<std::vector<DirEntry>>(fs.list_dir(root), render_list));
  return out;
}

}  // namespace

TEST_CASE("FakeFs: behaves like RealFs on the same script") {
  nfsup::test::TempDir tmp;
  RealFs real("unit");
  FakeFs fake;
  fake.add_dir("/r");
  auto a = script(real, tmp.path());
  auto b = script(fake, "/r");
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(show(b[i]) == show(a[i]));
  }
  // Spot-check the script itself so a regression in both cannot hide.
  CHECK(show(b[0]) == "ok:none");
  CHECK(show(b[3]) == "ok:false");
  CHECK(show(b[4]) == "ok:'x'");
  CHECK(show(b[6]) == "ok:file size=2 mode=384");
  CHECK(show(b[12]) == "ok:a,b,d/");
}

TEST_CASE("FakeFs: error messages look like RealFs's: op(path): strerror, Exit::Share") {
  FakeFs fs;
  fs.add_dir("/s");
  const int errs[] = {EIO, ESTALE, ETIMEDOUT, ENOSPC, EACCES};
  for (int e : errs) {
    CAPTURE(e);
    fs.clear_failures();
    fs.fail("*", "/s/f", e);
    std::string tail = std::string(": ") + strerror(e);
    auto r = fs.read_file("/s/f", 100);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == Exit::Share);
    CHECK(r.error().msg == "read_file(/s/f)" + tail);
    auto w = fs.write_atomic("/s/f", "x");
    REQUIRE_FALSE(w.ok());
    CHECK(w.error().msg == "write_atomic(/s/f)" + tail);
    auto p = fs.publish_new("/s/f", "x");
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().msg == "publish_new(/s/f)" + tail);
    auto st = fs.stat("/s/f");
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().msg == "stat(/s/f)" + tail);
    auto m = fs.mkdir("/s/f");
    REQUIRE_FALSE(m.ok());
    CHECK(m.error().msg == "mkdir(/s/f)" + tail);
    auto u = fs.unlink("/s/f");
    REQUIRE_FALSE(u.ok());
    CHECK(u.error().msg == "unlink(/s/f)" + tail);
    auto rm = fs.rmdir("/s/f");
    REQUIRE_FALSE(rm.ok());
    CHECK(rm.error().msg == "rmdir(/s/f)" + tail);
    auto l = fs.list_dir("/s/f");
    REQUIRE_FALSE(l.ok());
    CHECK(l.error().msg == "list_dir(/s/f)" + tail);
    auto pr = fs.probe("/s", "f", 100);
    REQUIRE_FALSE(pr.ok());
    CHECK(pr.error().msg == "probe(/s/f)" + tail);
    auto rn = fs.rename("/s/f", "/s/g");
    REQUIRE_FALSE(rn.ok());
    CHECK(rn.error().msg == "rename(/s/f -> /s/g)" + tail);
    CHECK(fs.paths() == std::vector<std::string>{"/s"});  // nothing was created by a failed call
  }
}

TEST_CASE("FakeFs: injected faults leave the tree unchanged and can be scoped") {
  FakeFs fs;
  fs.add_file("/s/a", "old");
  fs.add_dir("/s/d");

  fs.fail("write_atomic", "/s/a", ENOSPC);
  CHECK_FALSE(fs.write_atomic("/s/a", "new").ok());
  CHECK(fs.content("/s/a") == std::optional<std::string>("old"));
  CHECK(fs.read_file("/s/a", 100).ok());  // other ops on the path are unaffected

  fs.fail("rename", "/s/a", EIO);
  CHECK_FALSE(fs.rename("/s/a", "/s/b").ok());
  CHECK(fs.exists("/s/a"));
  CHECK_FALSE(fs.exists("/s/b"));

  fs.fail("unlink", "/s/a", ESTALE);
  CHECK_FALSE(fs.unlink("/s/a").ok());
  CHECK(fs.exists("/s/a"));

  // "dir/*" matches everything below dir, not dir itself or its siblings.
  fs.clear_failures();
  fs.fail("*", "/s/d/*", EIO);
  CHECK_FALSE(fs.write_atomic("/s/d/x", "1").ok());
  CHECK_FALSE(fs.stat("/s/d/deeper/y").ok());
  CHECK(fs.stat("/s/d").ok());
  CHECK(fs.list_dir("/s/d").ok());
  CHECK(fs.write_atomic("/s/dd", "1").ok());

  // "*" path: the whole share is down for one op.
  fs.clear_failures();
  fs.fail("list_dir", "*", ETIMEDOUT);
  CHECK_FALSE(fs.list_dir("/s").ok());
  CHECK_FALSE(fs.list_dir("/").ok());
  CHECK(fs.read_file("/s/a", 100).ok());

  // A counted fault fires exactly that many times.
  fs.clear_failures();
  fs.fail("read_file", "/s/a", EIO, 2);
  CHECK_FALSE(fs.read_file("/s/a", 100).ok());
  CHECK_FALSE(fs.read_file("/s/a", 100).ok());
  CHECK(fs.read_file("/s/a", 100).ok());
}

TEST_CASE("FakeFs: probe needs the directory and reads the file like read_file") {
  FakeFs fs;
  fs.add_file("/s/MARKER", "m");
  auto r = fs.probe("/s", "MARKER", 10);
  REQUIRE(r.ok());
  CHECK(*r == std::optional<std::string>("m"));
  auto none = fs.probe("/s", "absent", 10);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  auto gone = fs.probe("/gone", "MARKER", 10);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == Exit::Share);
  CHECK(gone.error().msg == "probe(/gone): No such file or directory");
  auto notdir = fs.probe("/s/MARKER", "x", 10);
  REQUIRE_FALSE(notdir.ok());
  CHECK(notdir.error().msg == "probe(/s/MARKER): Not a directory");
  auto big = fs.probe("/s", "MARKER", 0);
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().code == Exit::Integrity);
  CHECK(big.error().msg == "/s/MARKER: file is larger than the 0 byte limit");
  fs.fail("probe", "/s", EIO);  // the open(dir) step
  auto dir_fault = fs.probe("/s", "MARKER", 10);
  REQUIRE_FALSE(dir_fault.ok());
  CHECK(dir_fault.error().msg == "probe(/s): Input/output error");
}

TEST_CASE("FakeFs: mtimes follow the fake clock") {
  FakeFs fs;
  fs.add_dir("/s");
  fs.set_now_ms(1000);
  REQUIRE(fs.write_atomic("/s/a", "1").ok());
  CHECK(fs.stat("/s/a").value()->mtime_ms == 1000);
  CHECK(fs.stat("/s").value()->mtime_ms == 1000);  // the directory changed too
  fs.advance_ms(250);
  CHECK(fs.now_ms() == 1250);
  REQUIRE(fs.write_atomic("/s/a", "2").ok());
  auto after = fs.stat("/s/a").value();
  CHECK(after->mtime_ms == 1250);
  fs.advance_ms(250);
  REQUIRE(fs.rename("/s/a", "/s/b").ok());
  CHECK(fs.stat("/s/b").value()->mtime_ms == 1250);  // rename keeps the file's own stamp and inode
  CHECK(fs.stat("/s/b").value()->ino == after->ino);
  CHECK(fs.stat("/s").value()->mtime_ms == 1500);
  REQUIRE(fs.publish_new("/s/c", "3").ok());
  CHECK(fs.stat("/s/c").value()->mtime_ms == 1500);
  CHECK(fs.stat("/s/c").value()->ino != after->ino);
}

TEST_CASE("FakeFs: every call is logged with op and path, and the hook sees it") {
  FakeFs fs;
  fs.add_dir("/s");
  std::vector<std::string> seen;
  fs.on_call = [&](const std::string& op, const std::string& path) { seen.push_back(op + " " + path); };
  (void)fs.read_file("/s/a", 10);
  (void)fs.write_atomic("/s//a/", "x");  // paths are normalized
  (void)fs.probe("/s", "MARKER", 10);
  (void)fs.rename("/s/a", "/s/b");
  (void)fs.unlink("/s/b");
  auto calls = fs.calls();
  REQUIRE(calls.size() == 5);
  CHECK(calls[0].op == "read_file");
  CHECK(calls[0].path == "/s/a");
  CHECK(calls[1].op == "write_atomic");
  CHECK(calls[1].path == "/s/a");
  CHECK(calls[2].op == "probe");
  CHECK(calls[2].path == "/s/MARKER");
  CHECK(calls[3].op == "rename");
  CHECK(calls[3].path == "/s/a -> /s/b");
  CHECK(calls[4].op == "unlink");
  CHECK(seen == std::vector<std::string>{"read_file /s/a", "write_atomic /s/a", "probe /s/MARKER",
                                         "rename /s/a -> /s/b", "unlink /s/b"});
  CHECK(fs.count("*") == 5);
  CHECK(fs.count("unlink", "/s/b") == 1);
  CHECK(fs.count("unlink", "/s/a") == 0);
  fs.clear_calls();
  CHECK(fs.calls().empty());

  // The hook can change the world between the call and its effect (a racing writer).
  fs.on_call = [&](const std::string& op, const std::string&) {
    if (op == "publish_new") fs.add_file("/s/lock", "someone else");
  };
  auto won = fs.publish_new("/s/lock", "me");
  REQUIRE(won.ok());
  CHECK_FALSE(*won);
  CHECK(fs.content("/s/lock") == std::optional<std::string>("someone else"));
}
