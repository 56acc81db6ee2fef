// store.h: a host's local object store against a real temp share (issue 17 item 1): a second
// release fetches only what changed, run trees are hard links to hashed objects, prune drops
// what no run tree links.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "fs.h"
#include "share.h"
#include "stage.h"
#include "store.h"
#include "util.h"

using namespace nfsup;

namespace {

struct TempTree {
  std::string dir;
  TempTree() {
    char t[] = "/tmp/nfsup-store.XXXXXX";
    dir = ::mkdtemp(t);
  }
  ~TempTree() { std::system(("chmod -R u+rwX " + dir + "; rm -rf " + dir).c_str()); }
};

void put(const std::string& p, const std::string& text) { std::ofstream(p) << text; }

std::string get(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct StoreFixture {
  TempTree t;
  RealFs fs{"t"};
  std::string root = t.dir + "/share", src = t.dir + "/src", state = t.dir + "/state";
  std::optional<Share> share;
  StoreFixture() {
    REQUIRE(::mkdir(root.c_str(), 0755) == 0);
    REQUIRE(::mkdir(src.c_str(), 0755) == 0);
    REQUIRE(::mkdir((src + "/bin").c_str(), 0755) == 0);
    REQUIRE(::mkdir(state.c_str(), 0755) == 0);
    REQUIRE(::mkdir((state + "/cache").c_str(), 0755) == 0);
    share.emplace(fs, root);
    REQUIRE(share->init().ok());
    put(src + "/bin/agent", "#!/bin/sh\necho one\n");
    put(src + "/data", std::string(5000, 'd'));
    put(src + "/same", "unchanged\n");
  }
  void stage(const std::string& v) {
    StageRequest r;
    r.source = src;
    r.version = v;
    auto s = stage_release(*share, r);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().msg));
  }
  std::string tree(const std::string& v) const { return state + "/cache/" + v; }
};

ino_t inode(const std::string& p) {
  struct stat st{};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("a second release is fetched into the local store for its changed files only") {
  StoreFixture f;
  f.stage("1.0");
  put(f.src + "/data", std::string(5000, 'e'));  // one file changes
  f.stage("2.0");
  LocalStore store(f.state + "/store");
  StoreStats s1;
  REQUIRE(f.share->copy_run_tree("1.0", "", f.tree("1.0"), &store, &s1).ok());
  CHECK(s1.fetched == 3);
  CHECK(s1.reused == 0);
  // The run tree's files are the store's objects (hard links), not copies.
  auto m1 = f.share->read_manifest("1.0");
  REQUIRE((m1 && *m1));
  for (const auto& e : (**m1).entries) {
    if (e.kind != ManifestEntry::File) continue;
    CAPTURE(e.path);
    CHECK(inode(f.tree("1.0") + "/" + e.path) == inode(store.object_path(e.sha256, e.mode)));
  }
  // The unchanged files of 2.0 are not read from the share again: garble them there (same
  // size, so only a read would notice) and the copy still succeeds, from the store.
  auto m2 = f.share->read_manifest("2.0");
  REQUIRE((m2 && *m2));
  for (const auto& e : (**m2).entries)
    if (e.kind == ManifestEntry::File && e.path != "data") {
      std::string p = f.share->object_path(e.sha256, e.mode);
      ::chmod(p.c_str(), 0644);
      put(p, std::string(e.size, 'X'));
    }
  StoreStats s2;
  auto c2 = f.share->copy_run_tree("2.0", "", f.tree("2.0"), &store, &s2);
  REQUIRE_MESSAGE(c2.ok(), (c2.ok() ? "" : c2.error().msg));
  CHECK(s2.fetched == 1);
  CHECK(s2.fetched_bytes == 5000);
  CHECK(s2.reused == 2);
  CHECK(get(f.tree("2.0") + "/data") == std::string(5000, 'e'));
  CHECK(get(f.tree("2.0") + "/same") == "unchanged\n");
  CHECK(get(f.tree("2.0") + "/bin/agent") == "#!/bin/sh\necho one\n");
}

TEST_CASE("a file that does not hash to its manifest entry never enters the local store") {
  StoreFixture f;
  f.stage("1.0");
  auto m = f.share->read_manifest("1.0");
  REQUIRE((m && *m));
  const ManifestEntry* data = nullptr;
  for (const auto& e : (**m).entries)
    if (e.path == "data") data = &e;
  REQUIRE(data);
  std::string p = f.share->object_path(data->sha256, data->mode);
  ::chmod(p.c_str(), 0644);
  put(p, std::string(data->size, 'Z'));
  LocalStore store(f.state + "/store");
  auto c = f.share->copy_run_tree("1.0", "", f.tree("1.0"), &store, nullptr);
  REQUIRE(!c.ok());
  CHECK(c.error().code == Exit::Integrity);
  struct stat st{};
  CHECK(::lstat(store.object_path(data->sha256, data->mode).c_str(), &st) != 0);
  CHECK(store.prune().ok());  // (and no temp is left: nothing to keep)
}

TEST_CASE("prune drops the store objects no run tree links, and keeps the others") {
  StoreFixture f;
  f.stage("1.0");
  put(f.src + "/data", std::string(5000, 'e'));
  f.stage("2.0");
  LocalStore store(f.state + "/store");
  REQUIRE(f.share->copy_run_tree("1.0", "", f.tree("1.0"), &store, nullptr).ok());
  REQUIRE(f.share->copy_run_tree("2.0", "", f.tree("2.0"), &store, nullptr).ok());
  auto m1 = f.share->read_manifest("1.0");
  REQUIRE((m1 && *m1));
  std::string old_data, same;
  for (const auto& e : (**m1).entries) {
    if (e.path == "data") old_data = store.object_path(e.sha256, e.mode);
    if (e.path == "same") same = store.object_path(e.sha256, e.mode);
  }
  auto none = store.prune();
  REQUIRE(none.ok());
  CHECK(*none == 0);
  REQUIRE(remove_tree(f.tree("1.0")).ok());
  auto one = store.prune();
  REQUIRE(one.ok());
  CHECK(*one == 1);
  struct stat st{};
  CHECK(::lstat(old_data.c_str(), &st) != 0);
  CHECK(::lstat(same.c_str(), &st) == 0);  // 2.0 still links it
  CHECK(get(f.tree("2.0") + "/same") == "unchanged\n");
}
