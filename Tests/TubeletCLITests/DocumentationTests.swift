import Foundation
import XCTest

/// The README is the front door and docs/ holds one page a topic: every relative link in them resolves to
/// a file in the repository (and its #anchor to a heading), no link leaves the repository, every docs page
/// is linked from the README, the README stays short, and no page speaks of work sessions.
final class DocumentationTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    var pages: [URL] {
        let docs = (try? FileManager.default.contentsOfDirectory(at: root.appendingPathComponent("docs"), includingPropertiesForKeys: nil)) ?? []
        return [root.appendingPathComponent("README.md")] + docs.filter { $0.pathExtension == "md" }.sorted { $0.path < $1.path }
    }

    /// The text outside fenced code blocks and inline code.
    func prose(_ text: String) -> String {
        var fenced = false
        var lines: [String] = []
        for line in text.components(separatedBy: "\n") {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") { fenced.toggle(); continue }
            if !fenced { lines.append(line.replacingOccurrences(of: "`[^`]*`", with: "", options: .regularExpression)) }
        }
        return lines.joined(separator: "\n")
    }

    /// GitHub-style heading anchors of a markdown file.
    func anchors(_ file: URL) -> Set<String> {
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        var found = Set<String>()
        var fenced = false
        for line in text.components(separatedBy: "\n") {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") { fenced.toggle() }
            guard !fenced, line.hasPrefix("#") else { continue }
            var heading = line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
            heading = heading.replacingOccurrences(of: "\\[([^\\]]*)\\]\\([^)]*\\)", with: "$1", options: .regularExpression)
            heading = heading.replacingOccurrences(of: "[`*_]", with: "", options: .regularExpression)
            heading = heading.replacingOccurrences(of: "[^\\w\\- ]", with: "", options: .regularExpression)
            found.insert(heading.replacingOccurrences(of: " ", with: "-"))
        }
        return found
    }

    func links(_ text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: "\\]\\(([^)\\s]+)\\)")
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range(at: 1), in: text)!]) }
    }

    func testEveryLinkResolvesInsideTheRepository() throws {
        var problems: [String] = []
        var linkedFromReadme = Set<String>()
        var checked = 0
        for page in pages {
            let name = page.path.replacingOccurrences(of: root.path + "/", with: "")
            let text = prose(try String(contentsOf: page, encoding: .utf8))
            if text.range(of: "https?://", options: .regularExpression) != nil { problems.append("\(name): a link to another host") }
            for target in links(text) {
                if target.range(of: "^[a-z]+:", options: .regularExpression) != nil { problems.append("\(name): \(target) is not relative"); continue }
                checked += 1
                let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                let destination = parts[0].isEmpty ? page : page.deletingLastPathComponent().appendingPathComponent(parts[0]).standardizedFileURL
                guard destination.path.hasPrefix(root.path + "/") else { problems.append("\(name): \(target) leaves the repository"); continue }
                guard FileManager.default.fileExists(atPath: destination.path) else { problems.append("\(name): \(target): no such file"); continue }
                if parts.count == 2, destination.pathExtension == "md", !anchors(destination).contains(parts[1]) {
                    problems.append("\(name): \(target): no such heading")
                }
                if page.lastPathComponent == "README.md" { linkedFromReadme.insert(destination.path) }
            }
        }
        for page in pages.dropFirst() where !linkedFromReadme.contains(page.path) {
            problems.append("README.md does not link docs/\(page.lastPathComponent)")
        }
        XCTAssertGreaterThan(checked, 20)
        XCTAssertEqual(problems, [])
    }

    func testReadmeIsAFrontDoor() throws {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertLessThanOrEqual(readme.components(separatedBy: "\n").count, 260, "README.md: details belong in docs/")
        let commands = readme.range(of: "Scripts/demo")!.lowerBound
        XCTAssertLessThan(readme.distance(from: readme.startIndex, to: commands), 1200, "the two commands come first")
        XCTAssertNotNil(readme.range(of: "Scripts/test"))
        for page in pages {
            let text = try String(contentsOf: page, encoding: .utf8)
            XCTAssertNil(text.range(of: "[Ss]ession [0-9]", options: .regularExpression), "\(page.lastPathComponent) speaks of work sessions")
        }
    }
}
