// Issue 16 promises 4, 5, 16 at the unit level: RealFs confined to a share root never follows
// a symlink below it (openat2 and the openat walk); printable() escapes what hosts write; a
// vote counts only for the switch it names.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "fs.h"
#include "share.h"
#include "stage.h"
#include "util.h"

using namespace nfsup;

namespace {

struct TempTree {
  std::string dir;
  TempTree() {
    char t[] = "/tmp/nfsup-confine.XXXXXX";
    dir = ::mkdtemp(t);
  }
  ~TempTree() { std::system(("rm -rf " + dir).c_str()); }
};

bool exists(const std::string& p) {
  struct stat st{};
  return ::lstat(p.c_str(), &st) == 0;
}

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

void check_confined(bool walk) {
  fs_force_walk_for_tests(walk);
  TempTree t;
  std::string root = t.dir + "/share", out = t.dir + "/outside";
  REQUIRE(::mkdir(root.c_str(), 0755) == 0);
  REQUIRE(::mkdir(out.c_str(), 0755) == 0);
  REQUIRE(::mkdir((root + "/hosts").c_str(), 0755) == 0);
  REQUIRE(::symlink(out.c_str(), (root + "/inbox").c_str()) == 0);
  REQUIRE(::symlink(out.c_str(), (root + "/hosts/evil").c_str()) == 0);
  std::ofstream(out + "/secret") << "outside\n";
  RealFs fs("t");
  fs.confine(root + "/");
  for (const std::string& d : {root + "/inbox", root + "/hosts/evil"}) {
    CAPTURE(d);
    auto w = fs.write_atomic(d + "/f", "x\n", 0644);
    REQUIRE(!w);
    CHECK(w.error().code == Exit::Integrity);
    CHECK(has(w.error().msg, d + ": not a directory (a symlink?)"));
    CHECK(!fs.publish_new(d + "/g", "x\n", 0644));
    CHECK(!fs.mkdir(d + "/sub", 0755));
    CHECK(!fs.list_dir(d));
    CHECK(!fs.read_file(d + "/secret", 1000));
    CHECK(!fs.unlink(d + "/secret"));
    CHECK(!fs.rename(d + "/secret", root + "/stolen"));
    CHECK(!fs.probe(d, "secret", 1000));
    CHECK(!fs.touch(d + "/secret"));  // an error (a symlink on the way), not "absent"
    CHECK(!fs.create_new(d + "/h", 0644));
    CHECK(fs.link(root + "/hosts", d + "/l") != 0);
    CHECK(fs.symlink("/etc", d + "/s") != 0);
    auto st = fs.stat(d);  // the symlink itself is seen, not followed
    REQUIRE(st);
    REQUIRE(*st);
    CHECK((*st)->type == FileInfo::Symlink);
  }
  CHECK(exists(out + "/secret"));
  CHECK(!exists(out + "/f"));
  CHECK(!exists(out + "/g"));
  CHECK(!exists(out + "/sub"));
  CHECK(!exists(out + "/h"));
  CHECK(!exists(root + "/stolen"));
  // A symlink as the final name is not read through either.
  REQUIRE(::symlink((out + "/secret").c_str(), (root + "/hosts/status").c_str()) == 0);
  auto r = fs.read_file(root + "/hosts/status", 1000);
  REQUIRE(!r);
  CHECK(has(r.error().msg, "a symlink on the share"));
  // Real directories work, missing ones are "not found", and the root may be reached by a symlink.
  REQUIRE(fs.mkdir(root + "/hosts/h1", 0755));
  REQUIRE(fs.write_atomic(root + "/hosts/h1/status", "ok\n", 0644));
  auto back = fs.read_file(root + "/hosts/h1/status", 1000);
  REQUIRE(back);
  REQUIRE(*back);
  CHECK(**back == "ok\n");
  auto missing = fs.read_file(root + "/nope/x/status", 1000);
  REQUIRE(missing);
  CHECK(!*missing);
  auto gone = fs.unlink(root + "/nope/x");
  REQUIRE(gone);
  CHECK(!*gone);
  std::string alias = t.dir + "/alias";
  REQUIRE(::symlink(root.c_str(), alias.c_str()) == 0);
  RealFs fs2("t");
  fs2.confine(alias);
  auto via = fs2.read_file(alias + "/hosts/h1/status", 1000);
  REQUIRE(via);
  REQUIRE(*via);
  CHECK(**via == "ok\n");
  // Paths outside the root are not confined (local files may be reached through symlinks).
  auto local = fs.read_file(t.dir + "/alias/hosts/h1/status", 1000);
  REQUIRE(local);
  CHECK(*local);
  // Removing a tree on the share removes a symlink in it as a name, never what it points to.
  REQUIRE(::mkdir((root + "/tree").c_str(), 0755) == 0);
  REQUIRE(::mkdir((root + "/tree/d").c_str(), 0555) == 0);
  REQUIRE(::symlink(out.c_str(), (root + "/tree/link").c_str()) == 0);
  CHECK(remove_tree(fs, root + "/tree"));
  CHECK(!exists(root + "/tree"));
  CHECK(exists(out + "/secret"));
  fs_force_walk_for_tests(false);
}

}  // namespace

TEST_CASE("a confined RealFs never follows a symlink below the share root (openat2 where the kernel has it)") {
  check_confined(false);
}

TEST_CASE("a confined RealFs never follows a symlink below the share root (openat walk)") { check_confined(true); }

TEST_CASE("touch sets a file's times beneath the root, never through a symlink; probe_in gives the directory's mtime") {
  TempTree t;
  std::string root = t.dir + "/share", out = t.dir + "/outside";
  REQUIRE(::mkdir(root.c_str(), 0755) == 0);
  REQUIRE(::mkdir(out.c_str(), 0755) == 0);
  REQUIRE(::mkdir((root + "/hosts").c_str(), 0755) == 0);
  REQUIRE(::mkdir((root + "/hosts/h1").c_str(), 0755) == 0);
  std::ofstream(root + "/hosts/h1/status") << "s\n";
  std::ofstream(out + "/secret") << "outside\n";
  auto mtime = [](const std::string& p) {
    struct stat st{};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  };
  auto age = [](const std::string& p) {  // an old time, so that a touch is seen
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
  };
  age(root + "/hosts/h1/status");
  age(out + "/secret");
  RealFs fs("t");
  fs.confine(root + "/");
  auto r = fs.touch(root + "/hosts/h1/status");
  REQUIRE(r);
  CHECK(*r);
  CHECK(mtime(root + "/hosts/h1/status") > int64_t{1000} * 1000000000);
  auto gone = fs.touch(root + "/hosts/h1/nothing");
  REQUIRE(gone);
  CHECK(!*gone);
  auto nodir = fs.touch(root + "/hosts/h2/status");
  REQUIRE(nodir);
  CHECK(!*nodir);
  // a symlink as the final name: the link's own times, never its target's
  REQUIRE(::symlink((out + "/secret").c_str(), (root + "/hosts/h1/link").c_str()) == 0);
  CHECK(fs.touch(root + "/hosts/h1/link"));
  CHECK(mtime(out + "/secret") == int64_t{1000} * 1000000000);
  // probe_in: the directory's mtime, changed by a rename into it
  int64_t m1 = 0, m2 = 0;
  REQUIRE(fs.probe_in(root, "MARKER", 1000, &m1));
  CHECK(m1 != 0);
  age(root);
  REQUIRE(fs.probe_in(root, "MARKER", 1000, &m1));
  std::ofstream(root + "/.tmp.p") << "p\n";
  REQUIRE(::rename((root + "/.tmp.p").c_str(), (root + "/current").c_str()) == 0);
  REQUIRE(fs.probe_in(root, "MARKER", 1000, &m2));
  CHECK(m2 != m1);
}

TEST_CASE("printable escapes control characters, invalid UTF-8, C1 and bidi controls") {
  CHECK(printable("plain text: 1.0 -> 2.0") == "plain text: 1.0 -> 2.0");
  CHECK(printable("a\nb\tc\rd") == "a\\nb\\tc\\rd");
  CHECK(printable("\x1b[2Jx\x07\x7f") == "\\x1b[2Jx\\x07\\x7f");
  CHECK(printable(std::string("nul\0x", 5)) == "nul\\x00x");
  CHECK(printable("caf\xc3\xa9 \xe2\x9c\x93") == "caf\xc3\xa9 \xe2\x9c\x93");  // valid UTF-8 stays
  CHECK(printable("\xff\xc3") == "\\xff\\xc3");                                  // invalid, truncated
  CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");                                  // overlong '/'
  CHECK(printable("\xc2\x9b" "31m") == "\\u{009b}31m");                         // C1 CSI
  CHECK(printable("a\xe2\x80\xae" "b") == "a\\u{202e}b");                       // right-to-left override
  CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");                         // a surrogate
  for (int c = 0; c < 256; ++c) {
    std::string out = printable(std::string(1, static_cast<char>(c)));
    for (unsigned char o : out) CHECK((o >= 0x20 && o < 0x7f));
  }
}

TEST_CASE("a vote counts only for the marker whose generation, nonce and target it names") {
  Marker m;
  m.generation = 7;
  m.nonce = "00aa11bb22cc33dd";
  m.release = "2.0";
  Vote v;
  v.host = "h1";
  v.generation = 7;
  v.nonce = m.nonce;
  v.target = "2.0";
  v.accept = false;
  v.reason = "busy";
  auto back = unpack_vote(pack_vote(v), "vote");
  REQUIRE(back);
  CHECK(back->version == 2);
  CHECK(back->answers(m));
  CHECK(!back->accept);
  Marker retry = m;
  retry.nonce = "ffee";
  CHECK(!back->answers(retry));  // a retry under the same generation is another switch
  Marker other = m;
  other.release = "3.0";
  CHECK(!back->answers(other));
  Marker later = m;
  later.generation = 8;
  CHECK(!back->answers(later));
  // Format 1 names the generation only: read, never counted.
  auto old = unpack_vote("nfsup-vote 1\nhost h1\ngeneration 7\nvote accept\nreason -\n", "vote");
  REQUIRE(old);
  CHECK(old->version == 1);
  CHECK(!old->answers(m));
  // Format 2 without its nonce or target is malformed.
  CHECK(!unpack_vote("nfsup-vote 2\nhost h1\ngeneration 7\ntarget 2.0\nvote accept\n", "vote"));
  CHECK(!unpack_vote("nfsup-vote 2\nhost h1\ngeneration 7\nnonce ab\nvote accept\n", "vote"));
}
