// Replays the fuzz seeds and regression inputs through the parsers in the normal build
// (no clang, no sanitizers), so every test run re-checks them.
//
//   fuzz-replay DIR      DIR = test/fuzz (holds corpus/<target>/ and regressions/<target>/)
//
// Every file goes through the same check as its libFuzzer target (fuzz_checks.h): no crash,
// no exception out of the parser, the round trip holds. A file named ok-* must be accepted
// and one named bad-* must be refused. A file directly in regressions/ goes through every
// target. NFSUP_FUZZ_VERBOSE=1 prints what each file gave. Ends with "N passed, M failed" (N = files replayed).
#define NFSUP_FUZZ_REPLAY 1
#include "fuzz_checks.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

namespace fsys = std::filesystem;

namespace {

using CheckFn = bool (*)(std::string_view);

struct Target {
  const char* name;
  CheckFn fn;
};

const Target kTargets[] = {
    {"record", nfsup_fuzz::check_record},     {"marker", nfsup_fuzz::check_marker},
    {"pointer", nfsup_fuzz::check_pointer},   {"status", nfsup_fuzz::check_status},
    {"manifest", nfsup_fuzz::check_manifest}, {"signature", nfsup_fuzz::check_signature},
    {"config", nfsup_fuzz::check_config},
};

int passed = 0, failed = 0;

std::string read_all(const fsys::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "" when the file passes, else why not.
std::string run_one(const Target& t, const std::string& text, const std::string& name) {
  bool accepted = false;
  nfsup_fuzz::last_error.clear();
  try {
    accepted = t.fn(text);
  } catch (const nfsup_fuzz::CheckFailure& e) {
    return std::string("property failed: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("exception escaped the parser: ") + e.what();
  } catch (...) {
    return "unknown exception escaped the parser";
  }
  if (std::getenv("NFSUP_FUZZ_VERBOSE"))
    std::cout << "  " << name << ": " << (accepted ? "accepted" : "refused: " + nfsup_fuzz::last_error) << "\n";
  if (name == "ok-valid-signature" && nfsup_fuzz::last_verified == 0)
    return "the signature made with the fuzz key did not verify";
  if (nfsup::starts_with(name, "ok-") && !accepted) return "expected to be accepted, was refused: " + nfsup_fuzz::last_error;
  if (nfsup::starts_with(name, "bad-") && accepted) return "expected to be refused, was accepted";
  return "";
}

void report(const std::string& label, const std::string& why) {
  if (why.empty()) {
    ++passed;
  } else {
    ++failed;
    std::cout << "FAIL " << label << ": " << why << "\n";
  }
}

std::vector<fsys::path> files_in(const fsys::path& dir) {
  std::vector<fsys::path> out;
  std::error_code ec;
  if (!fsys::is_directory(dir, ec)) return out;
  for (const auto& e : fsys::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz-replay DIR   (DIR = test/fuzz)\n";
    return 2;
  }
  fsys::path root = argv[1];
  int corpus_files = 0;
  for (const auto& t : kTargets) {
    for (const char* sub : {"corpus", "regressions"}) {
      for (const auto& f : files_in(root / sub / t.name)) {
        std::string name = f.filename().string();
        report(std::string(sub) + "/" + t.name + "/" + name, run_one(t, read_all(f), name));
        if (std::string(sub) == "corpus") ++corpus_files;
      }
    }
  }
  // Regression inputs not filed under a target: every parser must survive them.
  for (const auto& f : files_in(root / "regressions")) {
    std::string text = read_all(f), why;
    for (const auto& t : kTargets) {
      std::string w = run_one(t, text, "");
      if (!w.empty() && why.empty()) why = std::string(t.name) + ": " + w;
    }
    report("regressions/" + f.filename().string(), why);
  }
  if (corpus_files == 0) {
    std::cout << "FAIL no corpus files under " << (root / "corpus").string() << "\n";
    ++failed;
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed ? 1 : 0;
}
