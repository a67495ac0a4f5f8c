/// Reads torch.save checkpoints (the zip format torch has written since 1.6).
public enum TorchCheckpoint {
    /// Loads the pickled object of a torch.save zip file. Tensors borrow the memory-mapped file.
    /// `progress(done, total)` is called as each storage record is resolved (total = storages in the archive).
    public static func load(path: String, progress: ((Int, Int) -> Void)? = nil) throws -> PickleValue {
        let file = try MappedFile(path: path)
        let bytes = file.region.buffer
        try rejectNonZip(bytes, path: path)
        let archive = try ZipArchive(path: path, region: file.region)

        // torch names entries "<prefix>/data.pkl"; the prefix is the archive name chosen at save time.
        guard let pickleEntry = archive.entries.filter({ $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") })
            .min(by: { $0.name.count < $1.name.count }) else {
            throw LoadError(file: path, message: "zip archive has no data.pkl entry; expected a torch.save checkpoint")
        }
        let prefix = String(pickleEntry.name.dropLast("data.pkl".count))

        if let byteorder = archive.entry(named: prefix + "byteorder") {
            let text = String(decoding: archive.bytes(of: byteorder).buffer, as: UTF8.self)
            guard text == "little" else {
                throw LoadError(file: path, offset: byteorder.dataOffset, message: "checkpoint byteorder is \"\(text)\", expected \"little\"")
            }
        }

        let storagePrefix = prefix + "data/"
        let storageTotal = archive.entries.filter { $0.name.hasPrefix(storagePrefix) }.count
        var storages: [String: Unpickler.Storage] = [:]
        let pickleName = pickleEntry.name

        // BINPERSID ('storage', torch.FloatStorage, '<key>', '<location>', numel): a zip entry as a typed storage.
        let persistentLoad: (Unpickler.Node, Int) throws -> Unpickler.Node = { pid, offset in
            func fail(_ message: String) -> LoadError {
                LoadError(file: path, offset: offset, message: "\(message) (byte offset within \(pickleName))")
            }
            guard case .tuple(let fields) = pid, fields.count >= 5,
                  case .leaf(.string("storage")) = fields[0] else {
                throw fail("persistent id is not a ('storage', type, key, location, numel) tuple")
            }
            guard case .global(let typeName) = fields[1] else { throw fail("storage type is not a class") }
            guard case .leaf(.string(let key)) = fields[2] else { throw fail("storage key is not a string") }
            guard case .leaf(.int(let numel64)) = fields[4], numel64 >= 0, numel64 <= Int64(bytes.count) else {
                throw fail("storage '\(key)' element count is not an int that fits the file")
            }
            let dtype = storageDTypes[typeName]
            let elementCount = Int(numel64)
            if let cached = storages[key] {
                guard cached.typeName == typeName else {
                    throw fail("storage '\(key)' referenced as both \(cached.typeName) and \(typeName)")
                }
                return .storage(cached)
            }
            guard let entry = archive.entry(named: storagePrefix + key) else {
                throw fail("storage '\(key)' has no zip entry '\(storagePrefix + key)'")
            }
            let needed = elementCount * (dtype?.byteSize ?? 1)
            guard entry.size >= needed else {
                throw fail("storage '\(key)' needs \(needed) bytes (\(elementCount) × \(typeName)) but its zip entry has \(entry.size)")
            }
            let storage = Unpickler.Storage(typeName: typeName, dtype: dtype,
                                            region: archive.bytes(of: entry).slice(0, dtype == nil ? entry.size : needed),
                                            elementCount: elementCount)
            storages[key] = storage
            progress?(storages.count, storageTotal)
            return .storage(storage)
        }

        var unpickler = Unpickler(file: path, entryName: pickleName,
                                  bytes: archive.bytes(of: pickleEntry).buffer, persistentLoad: persistentLoad)
        return try withExtendedLifetime(file) { try unpickler.load() }
    }

    /// The tensor dictionary of a checkpoint: the top-level dict if its values are tensors, else the
    /// value under "state_dict", "model_state", "model", "module" or "state_dict_ema" (first that is a
    /// tensor dict), as (key, tensor) pairs in file order. Non-tensor entries and non-string keys are
    /// skipped; nested dicts are not flattened.
    public static func stateDict(_ root: PickleValue) -> [(name: String, tensor: RawTensor)]? {
        if let tensors = tensorEntries(root) { return tensors }
        for key in ["state_dict", "model_state", "model", "module", "state_dict_ema"] {
            if let value = root[key], let tensors = tensorEntries(value) { return tensors }
        }
        return nil
    }

    /// A dict with at least one string-keyed tensor value counts as a tensor dict.
    private static func tensorEntries(_ value: PickleValue) -> [(name: String, tensor: RawTensor)]? {
        guard case .dict(let entries) = value else { return nil }
        let tensors: [(name: String, tensor: RawTensor)] = entries.compactMap {
            guard case .string(let name) = $0.key, case .tensor(let t) = $0.value else { return nil }
            return (name, t)
        }
        return tensors.isEmpty ? nil : tensors
    }

    /// torch storage classes as pickled by torch.save (typed storages; UntypedStorage counts bytes).
    static let storageDTypes: [String: DType] = [
        "torch.DoubleStorage": .f64, "torch.FloatStorage": .f32, "torch.HalfStorage": .f16,
        "torch.BFloat16Storage": .bf16, "torch.LongStorage": .i64, "torch.IntStorage": .i32,
        "torch.ShortStorage": .i16, "torch.CharStorage": .i8, "torch.ByteStorage": .u8,
        "torch.BoolStorage": .bool, "torch.UntypedStorage": .u8, "torch.storage.UntypedStorage": .u8,
    ]

    /// Clear errors for files that are not torch.save zips, before the zip reader's generic ones.
    private static func rejectNonZip(_ bytes: UnsafeRawBufferPointer, path: String) throws {
        let resave = "re-save it with torch >= 1.6: torch.save(torch.load(old_path), new_path)"
        if bytes.count >= 2, bytes[0] == 0x80, (2...5).contains(bytes[1]) {
            throw LoadError(file: path, offset: 0, message: "legacy (pre-1.6, non-zip) torch.save format is not supported; \(resave)")
        }
        if bytes.count >= 262, Array(bytes[257..<262]) == Array("ustar".utf8) {
            throw LoadError(file: path, offset: 0, message: "legacy tar-based torch.save format is not supported; \(resave)")
        }
        guard bytes.count >= 4, bytes.u32(0) == 0x0403_4B50 else {
            throw LoadError(file: path, offset: 0, message: "not a zip archive (expected the 'PK\\x03\\x04' signature of a torch.save checkpoint)")
        }
    }
}
