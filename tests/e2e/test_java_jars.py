"""java_jars: jars, directories of jars and .zip archives of jars, packed like py_modules and
put on CLASSPATH in the order given, with the machine's real JDK (scripts/setup.sh installs it).
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import assert_ok
from httpfiles import Server
from javatools import java_tool, make_jar

MAIN = """
public class Main {
  public static void main(String[] args) {
    System.out.println(greet.Greeter.hello(names.Names.who()));
    System.out.println("CLASSPATH=" + System.getenv("CLASSPATH"));
  }
}
"""


@pytest.fixture
def jars(tmp_path):
    """greeter.jar (a file), libs/ (a directory holding names.jar) and main.jar."""
    make_jar(tmp_path, tmp_path / "greeter.jar", "greet", "Greeter",
             'public static String hello(String n) { return "hello " + n; }')
    make_jar(tmp_path, tmp_path / "libs" / "names.jar", "names", "Names",
             'public static String who() { return "names from a directory"; }')
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "Main.java").write_text(MAIN)
    cp = f"{tmp_path / 'greeter.jar'}:{tmp_path / 'libs' / 'names.jar'}"
    subprocess.run([java_tool("javac"), "-cp", cp, "-d", str(tmp_path / "main" / "out"),
                    str(tmp_path / "main" / "Main.java")], check=True)
    subprocess.run([java_tool("jar"), "cf", str(tmp_path / "main.jar"), "-C",
                    str(tmp_path / "main" / "out"), "."], check=True)
    return tmp_path


def run_java(rtenv, spec, cwd, env=None, flags=()):
    return rtenv.run(spec, java_tool("java"), "Main", cwd=cwd, env=env, flags=flags, timeout=60)


def test_jars_and_a_directory_of_jars_reach_the_class_path_in_order(rtenv, jars):
    spec = {"java_jars": ["greeter.jar", "libs", "main.jar"]}
    p = run_java(rtenv, spec, jars, env={"CLASSPATH": "/callers/own.jar"})
    assert_ok(p)
    lines = p.stdout.splitlines()
    assert lines[0] == "hello names from a directory", p.stdout
    entries = lines[1].removeprefix("CLASSPATH=").split(":")
    # The caller's first, then the field's in the order given; a directory by Java's wildcard.
    assert entries[0] == "/callers/own.jar", entries
    assert [Path(e).name for e in entries[1:]] == ["greeter.jar", "*", "main.jar"], entries
    assert all(Path(e).parent.parent == rtenv.pkgs for e in entries[1:]), entries
    assert (Path(entries[2]).parent / "names.jar").is_file()


def test_a_second_run_installs_nothing_and_a_changed_jar_is_a_new_resource(rtenv, jars):
    spec = {"java_jars": ["greeter.jar", "libs", "main.jar"]}
    first = rtenv("env", "create", "--json", "-e", json.dumps(spec), cwd=jars)
    assert_ok(first)
    first = json.loads(first.stdout)
    assert first["installed"] is True
    assert len(first["resources"]) == 3
    p = run_java(rtenv, spec, jars, flags=("-v",))
    assert_ok(p)
    assert "everything was on this machine already" in p.stderr, p.stderr

    make_jar(jars / "v2", jars / "greeter.jar", "greet", "Greeter",
             'public static String hello(String n) { return "hi again, " + n; }')
    second = rtenv("env", "create", "--json", "-e", json.dumps(spec), cwd=jars)
    assert_ok(second)
    second = json.loads(second.stdout)
    assert second["installed"] is True
    changed = set(second["resources"]) - set(first["resources"])
    assert len(changed) == 1, (first["resources"], second["resources"])
    p = run_java(rtenv, spec, jars)
    assert_ok(p)
    assert p.stdout.splitlines()[0] == "hi again, names from a directory", p.stdout


def test_a_zip_of_jars_is_unpacked_and_its_jars_used(rtenv, jars):
    with zipfile.ZipFile(jars / "deps.zip", "w") as z:
        z.write(jars / "greeter.jar", "greeter.jar")
        z.write(jars / "libs" / "names.jar", "names.jar")
    p = run_java(rtenv, {"java_jars": ["deps.zip", "main.jar"]}, jars)
    assert_ok(p)
    assert p.stdout.splitlines()[0] == "hello names from a directory", p.stdout


def test_a_jar_url_is_fetched_once_and_used_like_a_local_jar(rtenv, jars):
    # Ray fetches jar URLs in java_jars; so does rtenv, once, on the submitting side: the env
    # then names the jar's package in the store, and the URL is not asked for again.
    served = jars / "served"
    served.mkdir()
    (jars / "greeter.jar").rename(served / "greeter.jar")
    server = Server(served)
    try:
        spec = {"java_jars": [f"{server.url}/greeter.jar", "libs", "main.jar"]}
        p = run_java(rtenv, spec, jars)
        assert_ok(p)
        lines = p.stdout.splitlines()
        assert lines[0] == "hello names from a directory", p.stdout
        entries = lines[1].removeprefix("CLASSPATH=").split(":")
        assert Path(entries[0]).name == "greeter.jar" and Path(entries[0]).parent.parent == rtenv.pkgs
        assert server.gets == ["/greeter.jar"], server.gets
        assert_ok(run_java(rtenv, spec, jars))
        assert server.gets == ["/greeter.jar"], server.gets
    finally:
        server.close()
    missing = run_java(rtenv, {"java_jars": [f"{server.url}/gone.jar"]}, jars)
    assert missing.returncode == 3, missing.stderr
    assert "runtime_env.java_jars[0]" in missing.stderr, missing.stderr
