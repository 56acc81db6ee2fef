// nfsup master: SHARE/progress (see progress.h): the pure codec, and the write after each step.
#include "progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

#include "internal.h"
#include "record.h"

namespace nfsup {

namespace {

std::string dash(const std::string& v) { return v.empty() ? std::string("-") : v; }
std::string undash(const std::string& v) { return v == "-" ? std::string() : v; }

// The strings of a progress record that name things on the share: checked as such.
std::optional<std::string> check_names(const Progress& p) {
  for (const auto& v : {p.target, p.previous})
    if (!v.empty())
      if (auto e = check_version_name(v)) return e;
  for (const auto& list : {p.hosts, p.vetoed})
    for (const auto& h : list)
      if (auto e = check_host_name(h)) return e;
  for (const auto& b : p.batches)
    for (const auto& h : b)
      if (auto e = check_host_name(h)) return e;
  if (p.action != "push" && p.action != "rollback" && p.action != "finalize")
    return "action must be push, rollback or finalize";
  if (p.strategy != "all-at-once" && p.strategy != "rolling" && p.strategy != "finalize")
    return "strategy must be all-at-once, rolling or finalize";
  if (p.generation <= 0) return "generation must be positive";
  return std::nullopt;
}

Status read_step(const RecordLine& l, const RecordReader& rd, Progress& p) {
  if (l.args.size() != 3) return rd.bad(l, "step needs: index name batch");
  auto i = parse_i64(l.args[0]);
  auto b = parse_i64(l.args[2]);
  if (!i || !b || *i > 100000 || *b > 100000) return rd.bad(l, "step index and batch must be counts");
  p.step = static_cast<int>(*i);
  p.step_name = undash(l.args[1]);
  p.batch = static_cast<int>(*b);
  return ok_status();
}

Status read_policy(const RecordLine& l, const RecordReader& rd, Progress& p) {
  if (l.args.size() != 2) return rd.bad(l, "policy needs: name max-failures");
  p.policy = l.args[0];
  auto n = l.args[1] == "-1" ? std::optional<int64_t>(-1) : parse_i64(l.args[1]);
  if (!n || *n < -1 || *n > 1000000) return rd.bad(l, "max-failures must be -1 or a count");
  p.max_failures = static_cast<int>(*n);
  return ok_status();
}

Status read_lines(const Record& rec, const RecordReader& rd, Progress& p) {
  for (const auto& l : rec.lines) {
    if (l.key == "hosts") {
      p.hosts = l.args;
    } else if (l.key == "plan") {
      if (auto st = steps_of(l.args); !st) return rd.bad(l, st.error().msg);
      p.plan = l.args;
    } else if (l.key == "vetoed") {
      p.vetoed = l.args;
    } else if (l.key == "batch-hosts") {
      p.batches.push_back(l.args);
    } else if (l.key == "policy") {
      if (auto st = read_policy(l, rd, p); !st) return st;
    } else if (l.key == "ended") {
      if (l.args.size() != 1 || (l.args[0] != "backed-out" && l.args[0] != "aborted"))
        return rd.bad(l, "ended must be backed-out or aborted");
      p.ended = l.args[0];
    } else if (l.key == "step") {
      if (auto st = read_step(l, rd, p); !st) return st;
    } else if (l.key == "master") {
      if (l.args.size() != 2 || check_host_name(l.args[0]) || !parse_i64(l.args[1]))
        return rd.bad(l, "master needs: host pid");
      p.master_host = l.args[0];
      p.master_pid = *parse_i64(l.args[1]);
    } else if (l.key == "old") {
      if (l.args.size() != 1) return rd.bad(l, "old needs: the packed pointer");
      auto o = unpack_pointer(l.args[0], rd.what() + " (old pointer)");
      if (!o) return o.error();
      p.old = *o;
    }
  }
  return ok_status();
}

}  // namespace

std::vector<std::string> plan_tokens(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.steps)
    out.push_back(s.batch > 0 ? fmt::format("{}:{}", step_name(s.kind), s.batch) : std::string(step_name(s.kind)));
  return out;
}

Result<std::vector<Step>> steps_of(const std::vector<std::string>& tokens) {
  static const StepKind kinds[] = {StepKind::Acquire, StepKind::Vote,  StepKind::Stop,  StepKind::Migrate,
                                   StepKind::Switch,  StepKind::Start, StepKind::Fence, StepKind::Release};
  std::vector<Step> out;
  for (const auto& t : tokens) {
    auto colon = t.find(':');
    std::string name = t.substr(0, colon);
    int batch = 0;
    if (colon != std::string::npos) {
      auto b = parse_i64(t.substr(colon + 1));
      if (!b || *b <= 0 || *b > 100000) return err(Exit::Integrity, fmt::format("plan step '{}': bad batch", t));
      batch = static_cast<int>(*b);
    }
    auto k = std::find_if(std::begin(kinds), std::end(kinds), [&](StepKind x) { return name == step_name(x); });
    if (k == std::end(kinds)) return err(Exit::Integrity, fmt::format("plan step '{}': unknown step", t));
    out.push_back(Step{*k, {}, "", batch});
  }
  return out;
}

std::string pack_progress(const Progress& p) {
  Record r{"progress", kFormatVersion, {}};
  r.add("rollout", {dash(p.rollout)});
  r.add("generation", {std::to_string(p.generation)});
  r.add("action", {p.action});
  r.add("strategy", {p.strategy});
  r.add("target", {dash(p.target)});
  r.add("previous", {dash(p.previous)});
  r.add("subset", {p.subset ? "yes" : "no"});
  r.add("hosts", p.hosts);
  if (!p.vetoed.empty()) r.add("vetoed", p.vetoed);
  for (const auto& b : p.batches) r.add("batch-hosts", b);
  r.add("policy", {dash(p.policy), std::to_string(p.max_failures)});
  r.add("plan", p.plan);
  r.add("step", {std::to_string(p.step), dash(p.step_name), std::to_string(p.batch)});
  r.add("master", {dash(p.master_host), std::to_string(p.master_pid)});
  if (p.old) r.add("old", {pack_pointer(*p.old)});
  if (!p.ended.empty()) r.add("ended", {p.ended});
  return pack_record(r);
}

Result<Progress> unpack_progress(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "progress", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  Progress p;
  auto rollout = rd.str("rollout");
  if (!rollout) return rollout.error();
  p.rollout = undash(*rollout);
  auto gen = rd.num("generation");
  if (!gen) return gen.error();
  p.generation = *gen;
  p.action = rd.str_or("action", "push");
  p.strategy = rd.str_or("strategy", "all-at-once");
  p.target = undash(rd.str_or("target", "-"));
  p.previous = undash(rd.str_or("previous", "-"));
  p.subset = rd.str_or("subset", "no") == "yes";
  if (auto s = read_lines(*rec, rd, p); !s) return s.error();
  if (auto e = check_names(p)) return err(Exit::Integrity, fmt::format("{}: {}", what, *e));
  return p;
}

std::string progress_path(Share& share) { return path_join(share.root(), "progress"); }

Result<std::optional<Progress>> read_progress(Share& share) {
  const std::string path = progress_path(share);
  auto t = share.fs().read_file(path, kSmallFileMax);
  if (!t) return t.error();
  if (!*t) return std::optional<Progress>{};
  auto p = unpack_progress(**t, path);
  if (!p) return p.error();
  return std::optional<Progress>(*p);
}

std::string step_done_point(const Step& s) {
  if (s.batch > 0) return fmt::format("{}-{}-done", step_name(s.kind), s.batch);
  return fmt::format("{}-done", step_name(s.kind));
}

void record_step(Share& share, Progress& p, const Step& s, int index, const MasterOptions& opt) {
  p.step = index;
  p.step_name = step_name(s.kind);
  p.batch = s.batch;
  p.master_host = short_hostname();
  p.master_pid = self_pid();
  if (auto w = share.fs().write_atomic(progress_path(share), pack_progress(p), 0644); !w)
    note(opt, fmt::format("{} was not written (step {} {}): {}; a resume would start from the step before",
                          progress_path(share), index, p.step_name, w.error().msg));
  crash_point(step_done_point(s).c_str());
}

void end_progress(Share& share, const std::string& nonce, const std::string& how, const MasterOptions& opt) {
  auto pg = read_progress(share);
  if (!pg) return note(opt, fmt::format("{}: {}; left as it was", progress_path(share), pg.error().msg));
  if (!*pg || (*pg)->rollout != nonce || !(*pg)->ended.empty()) return;
  Progress p = **pg;
  p.ended = how;
  p.step = static_cast<int>(p.plan.size());
  p.step_name = step_name(StepKind::Release);
  p.batch = 0;
  if (auto w = share.fs().write_atomic(progress_path(share), pack_progress(p), 0644); !w)
    note(opt, fmt::format("{} was not written ({}): {}", progress_path(share), how, w.error().msg));
}

void record_plan_step(Share& share, Progress& p, const Plan& plan, StepKind kind, int batch,
                      const MasterOptions& opt) {
  for (size_t i = 0; i < plan.steps.size(); ++i)
    if (plan.steps[i].kind == kind && plan.steps[i].batch == batch)
      return record_step(share, p, plan.steps[i], static_cast<int>(i + 1), opt);
  // A step the plan does not have (no vote round, no migration): nothing done, nothing to record.
}

}  // namespace nfsup
