"""The reasoning data flywheel: seed problems with checkable answers → the policy
attempts each n times → problems it fails are evolved into harder, still verifiable
problems → those in the learnable band are kept for the next round of RL."""

from agentwheel.flywheels.reasoning.answer_format import Extraction, extract_answer
from agentwheel.flywheels.reasoning.attempts import AttemptRecord, Sample, collect_attempts
from agentwheel.flywheels.reasoning.consistency import ConsistencyResult, check_consistency
from agentwheel.flywheels.reasoning.evolve import EvolveConfig, evolve_reasoning
from agentwheel.flywheels.reasoning.filters import Band, Deduper
from agentwheel.flywheels.reasoning.grading import Verdict, check_answer, grade
from agentwheel.flywheels.reasoning.problem import GeneratorRef, Lineage, Problem
from agentwheel.flywheels.reasoning.procedural import ProceduralEvolver
from agentwheel.flywheels.reasoning.reward import ReasoningReward, RewardBreakdown
from agentwheel.flywheels.reasoning.seeds import load_seeds
from agentwheel.flywheels.reasoning.synth import SynthConfig, synth_reasoning
from agentwheel.flywheels.reasoning.teacher import TeacherEvolver
from agentwheel.flywheels.reasoning.verify import answers_match
from agentwheel.settings.answer_format import AnswerFormat

__all__ = [
    "AnswerFormat",
    "AttemptRecord",
    "Band",
    "ConsistencyResult",
    "Deduper",
    "EvolveConfig",
    "Extraction",
    "GeneratorRef",
    "Lineage",
    "Problem",
    "ProceduralEvolver",
    "ReasoningReward",
    "RewardBreakdown",
    "Sample",
    "SynthConfig",
    "TeacherEvolver",
    "Verdict",
    "answers_match",
    "check_answer",
    "check_consistency",
    "collect_attempts",
    "evolve_reasoning",
    "extract_answer",
    "grade",
    "load_seeds",
    "synth_reasoning",
]
