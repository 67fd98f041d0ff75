#!/usr/bin/env python3
"""usb_stick.py — the USB live stick under QEMU (TCG), driven over its serial console.

The VMs: QEMU x86_64, 1 GiB, no network (`-net none`), the stick as a USB disk
(`-device qemu-xhci -device usb-storage`, bootindex 0, snapshot: never written) and blank raw
virtio disks with serials. The stick carries the e2e test image (`test-disk.img`, which prints
BTY-DISK-BOOTED when booted), a truncated `broken.img.zst` and a `catalog.toml` naming one
remote image.

Boots (each firmware once for the stick, plus the cheap ones that check the results):
  uefi   OVMF: Enter on the serial console takes the wizard there; the image list shows both
         images and the catalog's entry, and the disk list shows the virtio disk but not the stick; broken.img.zst fails
         with a message and the done screen does not call it complete; then test-disk.img is
         flashed onto BTYTEST, and "Power off" ends the VM. The disk's bytes equal the image's.
  bios   SeaBIOS: at syslinux's boot: prompt the test types `bty bty.auto=test-disk.img@BTYDISK2`
         (what an operator does); two blank disks; the image goes onto the one with that serial
         with no further input, and the VM reboots (QEMU exits: -no-reboot). Disk 2 equals the
         image, disk 1 is still blank.
  ambiguous  direct kernel boot (the stick's own kernel and initrd, no firmware menu) with
         bty.auto=test-disk.img and two non-removable disks: refused with the reason on the
         console, both disks still blank.
  disk-uefi, disk-bios   the flashed disks boot alone and print BTY-DISK-BOOTED.
         Then, on the VM's keyboard (QEMU monitor `sendkey`): Alt+F2 to tty2's rescue shell,
         which copies tty1's screen (/dev/vcs1) to the serial console: tty1 offered the wizard
         and says it runs on ttyS0.
Figures printed (not asserted): power-on to the first wizard screen under OVMF, split into
firmware + boot menu / kernel / init to prompt / Enter to the image list.

Usage: usb_stick.py STICK_IMG TEST_IMG WORKDIR   (the stick built by bty-media/usb.sh with
       IMAGES="TEST_IMG broken.img.zst"). Env: BOOT_TIMEOUT (s, default 400).
Host tools: qemu-system-x86_64, ovmf, mtools. Exit 0 when every check passed.
"""
import os
import re
import subprocess
import sys
import threading
import time

STICK, IMAGE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
TIMEOUT = float(os.environ.get("BOOT_TIMEOUT", "400"))
OVMF = "/usr/share/qemu/OVMF.fd"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>78]")
failures = []


def check(ok, what):
    print(("PASS: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


class Vm:
    """One QEMU with its serial console on stdin/stdout; the text seen so far, escapes removed."""

    def __init__(self, name, args, monitor=False):
        self.name = name
        self.log = open(os.path.join(WORK, name + ".log"), "wb")
        self.start = time.time()
        # The monitor (a Unix socket) types on the VM's keyboard: tty1 and tty2 have no serial.
        self.monitor = os.path.join(WORK, name + ".monitor") if monitor else None
        mon = f"unix:{self.monitor},server=on,wait=off" if monitor else "none"
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-m", "1024", "-display", "none", "-monitor", mon,
             "-serial", "stdio", "-no-reboot", "-net", "none"] + args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.raw = b""
        self.times = []  # (host seconds since start, offset in raw)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            self.log.write(chunk)
            self.log.flush()
            with self.lock:
                self.times.append((time.time() - self.start, len(self.raw)))
                self.raw += chunk

    def text(self, since=0):
        with self.lock:
            return ANSI.sub(b"", self.raw[since:]).replace(b"\r", b"").decode("utf-8", "replace")

    def mark(self):
        with self.lock:
            return len(self.raw)

    def expect(self, pattern, since=0, timeout=TIMEOUT):
        """Waits for `pattern` (a regex) in the output after offset `since`; returns the seconds
        since power-on at which it was first seen, or None (timeout, or QEMU ended)."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while time.time() < deadline:
            if rx.search(self.text(since)):
                return self.seen_at(rx, since)
            if self.proc.poll() is not None:
                time.sleep(0.3)
                return self.seen_at(rx, since) if rx.search(self.text(since)) else None
            time.sleep(0.2)
        return None

    def seen_at(self, rx, since):
        """The time of the chunk that completed the first match (an upper bound)."""
        with self.lock:
            times = list(self.times)
        for t, off in times:
            if off < since:
                continue
            end = next((o for _, o in times if o > off), None)
            if rx.search(ANSI.sub(b"", self.raw[since:end]).replace(b"\r", b"").decode("utf-8", "replace")):
                return t
        return time.time() - self.start

    def send(self, data):
        self.proc.stdin.write(data.encode())
        self.proc.stdin.flush()

    def keys(self, *seq):
        for k in seq:
            self.send(k)
            time.sleep(0.4)

    def type_on_screen(self, *keys):
        """Sends QEMU `sendkey` names (e.g. "alt-f2", "c", "spc", "ret") to the VM's keyboard."""
        import socket
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(self.monitor)
            for k in keys:
                sock.sendall(f"sendkey {k}\n".encode())
                time.sleep(0.15)
            time.sleep(0.5)

    def wait_exit(self, timeout=TIMEOUT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def blank(name, mib=64):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    return path


def disk_args(path, serial):
    return ["-drive", f"if=none,id={serial},format=raw,file={path}",
            "-device", f"virtio-blk-pci,drive={serial},serial={serial}"]


STICK_ARGS = ["-drive", f"if=none,id=stick,format=raw,snapshot=on,file={STICK}",
              "-device", "qemu-xhci", "-device", "usb-storage,drive=stick,bootindex=0"]


def same_bytes(disk, image):
    size = os.path.getsize(image)
    with open(disk, "rb") as d, open(image, "rb") as i:
        while True:
            a, b = i.read(1 << 20), d.read(min(1 << 20, size))
            if a != b:
                return False
            if not a:
                return True
            size -= len(a)


def is_blank(disk):
    with open(disk, "rb") as f:
        return not any(f.read())


# `sendkey` names for the characters of a shell command typed on the VM's keyboard.
KEY_NAMES = {" ": "spc", "/": "slash", ">": "shift-dot", ".": "dot", "-": "minus", "\n": "ret"}


def keys_for(text):
    return [KEY_NAMES.get(c, f"shift-{c.lower()}" if c.isupper() else c) for c in text]


def uefi_interactive():
    target = blank("uefi-target.img")
    vm = Vm("uefi", ["-bios", OVMF] + STICK_ARGS + disk_args(target, "BTYTEST"), monitor=True)
    try:
        t_kernel = vm.expect(r"Linux version")
        t_init = vm.expect(r"USB stick starting as PID 1")
        t_prompt = vm.expect(r"press Enter to start the wizard on this console \(ttyS0\)")
        check(t_prompt is not None, "uefi: the serial console offers the wizard")
        if t_prompt is None:
            return None
        check(vm.expect(r"holds BTY_IMAGES: never offered", timeout=1) is not None,
              "uefi: the stick is recognised by its BTY_IMAGES partition")
        m = vm.mark()
        vm.send("\r")
        t_tui = vm.expect(r"test-disk\.img", since=m)
        check(t_tui is not None and "broken.img.zst" in vm.text(m),
              "uefi: the wizard on ttyS0 lists the preloaded images")
        check(vm.expect(r"from-catalog\.img\.zst", since=m, timeout=30) is not None,
              "uefi: ... and the entries of BTY_IMAGES/catalog.toml")
        # broken.img.zst is item 1 (sorted by name): it must fail, clearly, and not be called good.
        m = vm.mark()
        vm.keys("1", "\r")
        check(vm.expect(r"vda", since=m, timeout=120) is not None, "uefi: the disk list shows the virtio disk")
        time.sleep(2)
        check("/dev/sd" not in vm.text(m) and "sda " not in vm.text(m),
              "uefi: the stick (sda) is not offered as a target")
        vm.keys("1", "\r")
        vm.expect(r"Type yes", since=m, timeout=60)
        m = vm.mark()
        vm.keys("y", "e", "s", "\r")
        failed = vm.expect(r"(?i)flash failed|failed", since=m, timeout=180)
        out = vm.text(m)
        check(failed is not None and "Flash complete" not in out,
              "uefi: the truncated image fails with a message and is not reported good")
        print("   truncated image, console excerpt:",
              " | ".join(l.strip() for l in out.splitlines() if re.search(r"(?i)fail|zstd|end|truncat", l))[:400])
        # Back to the image list and flash the good image.
        m = vm.mark()
        vm.keys("\r")  # "back to the disk list" is highlighted after a failure
        vm.expect(r"vda", since=m, timeout=120)
        m = vm.mark()
        vm.keys("b")
        check(vm.expect(r"test-disk\.img", since=m, timeout=60) is not None, "uefi: back to the image list")
        m = vm.mark()
        vm.keys("2", "\r")
        vm.expect(r"vda", since=m, timeout=120)
        vm.keys("1", "\r")
        vm.expect(r"Type yes", since=m, timeout=60)
        m = vm.mark()
        vm.keys("y", "e", "s", "\r")
        check(vm.expect(r"Flash complete", since=m, timeout=300) is not None, "uefi: the flash completes")
        check(vm.expect(r"Power off", since=m, timeout=10) is not None,
              "uefi: the done screen offers power off (and reboot, flash another)")
        # The other consoles, through the VM's keyboard: Alt+F2 is the rescue shell; it copies
        # tty1's screen (/dev/vcs1) to the serial console, where tty1 must have offered the
        # wizard too and then said where it runs.
        m = vm.mark()
        vm.type_on_screen("alt-f2", *keys_for("cat /dev/vcs1 >/dev/ttyS0\n"))
        check(vm.expect(r"console \(tty1\).*the wizard is running on ttyS0", since=m, timeout=60) is not None,
              "uefi: tty1 offered the wizard and then shows it runs on ttyS0 (read by tty2's rescue shell)")
        vm.keys("4", "\r")
        check(vm.wait_exit(120) is not None, "uefi: power off ends the VM")
        check(same_bytes(target, IMAGE), "uefi: the target's bytes equal the image's")
        if None not in (t_kernel, t_init, t_prompt, t_tui):
            print(f"FIGURES uefi: firmware+menu {t_kernel:.1f} s, kernel {t_init - t_kernel:.1f} s, "
                  f"init to prompt {t_prompt - t_init:.1f} s, power-on to prompt {t_prompt:.1f} s; "
                  f"Enter to image list {t_tui - t_prompt:.1f} s (TCG)")
        return target
    finally:
        vm.stop()


def bios_unattended():
    d1, d2 = blank("bios-disk1.img"), blank("bios-disk2.img")
    vm = Vm("bios", STICK_ARGS + disk_args(d1, "BTYDISK1") + disk_args(d2, "BTYDISK2"))
    try:
        check(vm.expect(r"boot:") is not None, "bios: syslinux's boot prompt on the serial console")
        vm.send("bty bty.auto=test-disk.img@BTYDISK2\r")
        check(vm.expect(r"bty: auto-flash starting") is not None, "bios: the unattended flash starts")
        check(vm.expect(r"bty: flash complete; rebooting") is not None, "bios: ... completes and reboots")
        check(vm.wait_exit(120) is not None, "bios: the VM rebooted (QEMU -no-reboot exits)")
        check(same_bytes(d2, IMAGE), "bios: disk BTYDISK2 equals the image")
        check(is_blank(d1), "bios: disk BTYDISK1 is untouched")
        return d2
    finally:
        vm.stop()


def ambiguous():
    kernel, initrd = os.path.join(WORK, "vmlinuz"), os.path.join(WORK, "initrd")
    for src, dst in (("::/bty/vmlinuz", kernel), ("::/bty/initrd", initrd)):
        subprocess.run(["mcopy", "-o", "-i", f"{STICK}@@1M", src, dst], check=True)
    d1, d2 = blank("amb-disk1.img"), blank("amb-disk2.img")
    vm = Vm("ambiguous", ["-kernel", kernel, "-initrd", initrd, "-append",
                          "console=ttyS0,115200 bty.mode=usb bty.auto=test-disk.img"]
            + [a.replace(",bootindex=0", "") for a in STICK_ARGS]  # -kernel boots first
            + disk_args(d1, "AMB1") + disk_args(d2, "AMB2"))
    try:
        check(vm.expect(r"ambiguous target, 2 disks match") is not None,
              "ambiguous: bty.auto without a serial and two disks is refused with the reason")
        check(vm.expect(r"press Enter to start the wizard", timeout=60) is not None,
              "ambiguous: the console then offers the wizard")
        vm.stop()
        check(is_blank(d1) and is_blank(d2), "ambiguous: nothing was written")
    finally:
        vm.stop()


def boots_marker(name, disk, firmware):
    vm = Vm(name, firmware + ["-drive", f"if=none,id=d,format=raw,snapshot=on,file={disk}",
                              "-device", "virtio-blk-pci,drive=d,bootindex=0"])
    try:
        check(vm.expect(r"BTY-DISK-BOOTED", timeout=240) is not None, f"{name}: the flashed disk boots")
    finally:
        vm.stop()


def main():
    only = os.environ.get("STICK_MODES", "uefi bios ambiguous").split()
    if "uefi" in only:
        t = uefi_interactive()
        if t:
            boots_marker("disk-uefi", t, ["-bios", OVMF])
    if "bios" in only:
        t = bios_unattended()
        if t:
            boots_marker("disk-bios", t, [])
    if "ambiguous" in only:
        ambiguous()
    print(f"usb-stick: {len(failures)} failed; logs in {WORK}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
