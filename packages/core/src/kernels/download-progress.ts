/**
 * One progress line on stderr while something downloads: rewritten in place on a terminal, a line
 * every quarter of the way (and at the end) otherwise, so a CI log gets a few lines, not hundreds.
 */
export class DownloadProgress {
  private done = 0
  private lastDraw = 0
  private lastQuarter = -1
  private readonly tty = Boolean(process.stderr.isTTY)

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly write: (text: string) => void = (text) => process.stderr.write(text),
  ) {}

  add(bytes: number): void {
    this.done += bytes
    if (this.tty) {
      const now = Date.now()
      if (now - this.lastDraw < 100 && this.done < this.total) return
      this.lastDraw = now
      this.write(`\r\x1b[Kvmctl: ${this.text()}`)
    } else {
      const quarter = Math.floor((this.done / this.total) * 4)
      if (quarter > this.lastQuarter && quarter < 4) {
        this.lastQuarter = quarter
        this.write(`vmctl: ${this.text()}\n`)
      }
    }
  }

  finish(): void {
    this.write(this.tty ? `\r\x1b[Kvmctl: ${this.text()}\n` : `vmctl: ${this.text()}\n`)
  }

  private text(): string {
    const mb = (n: number) => (n / 1e6).toFixed(1)
    return `downloading ${this.label}: ${mb(this.done)}/${mb(this.total)} MB`
  }
}
